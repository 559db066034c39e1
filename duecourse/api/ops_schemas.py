"""Bodies of the ops views: lists of the ledger's own message and alert views, and the
acknowledgement request."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from duecourse.store.ops_queries import AlertView, MessageView


class MessageList(BaseModel):
    messages: list[MessageView]


class AlertList(BaseModel):
    alerts: list[AlertView]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = Field(
        default="", description="what was done about it (kept in the ledger)")

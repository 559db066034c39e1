"""Response bodies of the ops views: messages, alerts and their acknowledgement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class MessageOut(BaseModel):
    """A message sent, stopped or planned, and the compliance decision behind it."""

    at: datetime = Field(description="when it was sent (or last attempted, or decided)")
    loan_id: str
    case_id: str
    channel: str
    recipient_kind: str = Field(description="debtor, guarantor or third_party")
    purpose: str
    status: str = Field(description="sent, blocked, deferred, failed, cancelled, expired, "
                                    "in_doubt, claimed (sending now) or made_by_person")
    step: str
    template: str | None
    verdict: str | None = Field(description="the compliance decision: allowed, blocked or "
                                            "deferred (none recorded for older messages)")
    code: str
    rule: str = Field(description="the rule and its legal reference, when one decided")
    detail: str
    reason: str = Field(description="the rule that decided, in one line")
    until: datetime | None = Field(description="deferred: when it is asked again; allowed: "
                                               "the end of its lawful window")
    decided_by: str | None
    subject: str | None
    body: str | None = Field(description="as handed to the channel; only for messages "
                                         "that went (or may have gone) out")
    message_id: str | None
    error: str | None
    key: str = Field(description="the message's idempotency key")


class MessageList(BaseModel):
    messages: list[MessageOut]


class AlertOut(BaseModel):
    alert_id: int
    loan_id: str
    case_id: str
    subject: str
    body: str
    raised_at: datetime
    open: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None


class AlertList(BaseModel):
    alerts: list[AlertOut]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = Field(
        default="", description="what was done about it (kept in the ledger)")

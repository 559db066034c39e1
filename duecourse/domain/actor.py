"""Who did something: every ledger row and decision names its actor."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ActorKind(StrEnum):
    SYSTEM = "system"
    PLATFORM = "platform"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    BORROWER = "borrower"
    OPS = "ops"


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ActorKind
    id: str = Field(min_length=1, max_length=128)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


SYSTEM = Actor(kind=ActorKind.SYSTEM, id="duecourse")

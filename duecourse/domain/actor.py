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
    CODEC = "codec"


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ActorKind
    id: str = Field(min_length=1, max_length=128)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


SYSTEM = Actor(kind=ActorKind.SYSTEM, id="duecourse")


class Role(StrEnum):
    """What an API key, or a person at the CLI, may do; stored with each key. A role acts
    as the actor kind of the same name, so the ledger names who did what in which role."""

    PLATFORM = "platform"  # starts loans, reports payments, cancels, registers webhooks
    AGENT = "agent"  # works loans and tasks
    SUPERVISOR = "supervisor"  # an agent's work plus legal approvals, deep settlements
    OPS = "ops"  # reads everything, records legal case events, acknowledges alerts
    CODEC = "codec"  # decodes Temporal payloads at the codec server, and nothing else

    def actor(self, name: str) -> Actor:
        """`name` acting in this role."""
        return Actor(kind=ActorKind(self.value), id=name)


API_ROLES = (Role.PLATFORM, Role.AGENT, Role.SUPERVISOR, Role.OPS)
"""The roles the REST API admits; a codec key (the Temporal UI's, whose key is in its
settings for anyone who loads the UI) opens payloads at the codec server only."""

PERSON_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.OPS)
"""The roles a person acts in at the CLI (a platform acts through its API key)."""

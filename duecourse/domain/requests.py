"""What platforms and agents send to a loan's workflow (signals and updates)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel

Reference = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PaymentReport(_Request):
    """A payment the platform received. Deduplicated by `reference`."""

    reference: Reference
    amount: Money
    paid_at: AwareDatetime
    actor: Actor = Actor(kind=ActorKind.PLATFORM, id="platform")


class ContactResult(StrEnum):
    REACHED = "reached"  # an agent spoke with the borrower
    BORROWER_REPLIED = "borrower_replied"  # the borrower answered a message or called in
    REFUSED = "refused"  # reached, and the borrower refused to pay
    NO_ANSWER = "no_answer"
    WRONG_NUMBER = "wrong_number"
    LEFT_MESSAGE = "left_message"

    @property
    def engaged(self) -> bool:
        """The borrower is in a conversation with us: time to negotiate."""
        return self in {ContactResult.REACHED, ContactResult.BORROWER_REPLIED,
                        ContactResult.REFUSED}


class ContactOutcomeReport(_Request):
    """What came of a contact; `address`/`third_party` say who was (not) reached."""

    channel: Channel
    result: ContactResult
    actor: Actor
    note: Note = ""
    address: str | None = Field(default=None, max_length=320)
    third_party: bool = False


class PromiseRequest(_Request):
    """An agreed promise to pay `amount` by `due_date` (borrower-local date)."""

    amount: Money
    due_date: date
    actor: Actor
    note: Note = ""


class PromiseAccepted(BaseModel):
    promise_id: str
    amount: Money
    due_date: date
    check_at: datetime


class LegalDecision(_Request):
    """A supervisor's decision on referring the loan to litigation."""

    approve: bool
    actor: Actor
    reason: Note = Field(min_length=1)


class LegalDecisionResult(BaseModel):
    approved: bool
    legal_phase: str | None
    stage: str


class CancelRequest(_Request):
    """The platform withdraws the loan from collection (e.g. restructured elsewhere)."""

    reason: Note = Field(min_length=1)
    actor: Actor = Actor(kind=ActorKind.PLATFORM, id="platform")

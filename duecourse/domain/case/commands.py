"""What platforms and agents send to a loan's workflow (signals and updates)."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.compliance.model import RecipientKind
from duecourse.domain.ids import REFERENCE_PATTERN, Reference
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel

Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class Command(BaseModel):
    """What someone outside asks of a loan's workflow: frozen as it was sent, and a field
    it does not know is refused (a typo must not pass as an omission)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PaymentReport(Command):
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
    WRONG_NUMBER = "wrong_number"  # also a dialer's "invalid number": the number is wrong
    LEFT_MESSAGE = "left_message"
    # a dialer's call results (issue 13); its "answered" is REACHED
    BUSY = "busy"  # an unanswered attempt
    VOICEMAIL = "voicemail"  # an unanswered attempt (a message may have been left)
    RIGHT_PARTY_VERIFIED = "right_party_verified"  # answered, and it was the borrower
    PROMISE_TAKEN = "promise_taken"  # answered, and the borrower promised to pay

    @property
    def engaged(self) -> bool:
        """The borrower is in a conversation with us: time to negotiate."""
        return self in {ContactResult.REACHED, ContactResult.BORROWER_REPLIED,
                        ContactResult.REFUSED, ContactResult.RIGHT_PARTY_VERIFIED,
                        ContactResult.PROMISE_TAKEN}

    @property
    def conversation(self) -> bool:
        """A call we placed was answered and talked on (the CN answered-call cap and the
        US quiet period after a conversation count it); every other call result but a
        wrong number is an unanswered attempt."""
        return self in {ContactResult.REACHED, ContactResult.REFUSED,
                        ContactResult.RIGHT_PARTY_VERIFIED, ContactResult.PROMISE_TAKEN}


_RECORDING_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!#-~]*)?")
_RECORDING_ID = re.compile(REFERENCE_PATTERN)


def _recording(value: str) -> str:
    url = value.startswith("https://") and len(value) <= 512 and \
        _RECORDING_URL.fullmatch(value)
    if not url and ("://" in value or not _RECORDING_ID.fullmatch(value)):
        raise ValueError("a recording is an https:// URL (up to 512 characters) or the "
                         "dialer's plain id (letters, digits, . _ : / -, up to 128)")
    return value


Recording = Annotated[str, StringConstraints(strip_whitespace=True, max_length=512),
                     AfterValidator(_recording)]
"""A call recording's reference: kept with the outcome, never fetched."""


class ContactOutcomeReport(Command):
    """What came of a contact; `address`, `recipient_kind` and `person` say who was (not)
    reached. The call limits count per person, so a guarantor's or third party's calls
    and conversations are theirs, not the debtor's."""

    channel: Channel
    result: ContactResult
    actor: Actor
    note: Note = ""
    address: str | None = Field(default=None, max_length=320)
    third_party: bool = False
    recipient_kind: RecipientKind | None = Field(
        default=None, description="who it was with; default: third_party if third_party, "
        "else debtor")
    person: str | None = Field(
        default=None, min_length=1, max_length=128, description="who it was, when a "
        "guarantor or third party has several numbers")
    recontact_invited: bool = Field(
        default=False, description="the third party asked to be contacted again, or their "
        "earlier answer proved wrong (15 USC 1692b(3))")
    collectors: int = Field(default=1, ge=1, le=10, description="people on a home visit "
                            "(CN: at least 2)")
    recording: Recording | None = Field(
        default=None, description="the call's recording: an https URL or the dialer's id")

    @model_validator(mode="after")
    def _who(self) -> ContactOutcomeReport:
        if self.recipient_kind is None:
            kind = RecipientKind.THIRD_PARTY if self.third_party else RecipientKind.DEBTOR
            object.__setattr__(self, "recipient_kind", kind)
        elif self.third_party and self.recipient_kind is not RecipientKind.THIRD_PARTY:
            raise ValueError(f"third_party contradicts recipient_kind "
                             f"{self.recipient_kind.value}; give one or the other")
        kind = self.kind
        if kind is RecipientKind.THIRD_PARTY:
            object.__setattr__(self, "third_party", True)
        if kind is RecipientKind.DEBTOR and self.person is not None:
            raise ValueError("person names a guarantor or third party; the debtor is always "
                             "one person")
        if kind is RecipientKind.GUARANTOR and self.address is None and self.person is None:
            raise ValueError("a guarantor's outcome needs their address or person (the "
                             "default is the borrower's own)")
        if kind is RecipientKind.THIRD_PARTY and self.result is ContactResult.REFUSED and \
                not (self.address or "").strip() and self.person is None:
            raise ValueError("a third party's refusal needs their address or person: it is "
                             "kept so they are never contacted again, and without either "
                             "nobody would know whom to leave alone")
        if self.recording is not None and self.channel is not Channel.VOICE:
            raise ValueError(f"a recording is of a call; this outcome is of a "
                             f"{self.channel.value} contact")
        if self.recontact_invited and kind is not RecipientKind.THIRD_PARTY:
            raise ValueError("recontact_invited is about a third party (15 USC 1692b(3)); "
                             f"this outcome is with the {kind.value}")
        return self

    @property
    def kind(self) -> RecipientKind:
        """Who the contact was with (never None once validated)."""
        return self.recipient_kind or (RecipientKind.THIRD_PARTY if self.third_party
                                       else RecipientKind.DEBTOR)


class PromiseRequest(Command):
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


class LegalDecision(Command):
    """A supervisor's decision on referring the loan to litigation."""

    approve: bool
    actor: Actor
    reason: Note = Field(min_length=1)


class LegalDecisionResult(BaseModel):
    approved: bool
    legal_phase: str | None
    stage: str


class CancelRequest(Command):
    """The platform withdraws the loan from collection (e.g. restructured elsewhere)."""

    reason: Note = Field(min_length=1)
    actor: Actor = Actor(kind=ActorKind.PLATFORM, id="platform")

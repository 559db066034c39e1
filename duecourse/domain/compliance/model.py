"""What the compliance engine reasons about: the proposed contact, the borrower's standing
(preferences, holds, disputes) and the contact history."""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from duecourse.domain.policy import Channel


class RecipientKind(StrEnum):
    DEBTOR = "debtor"
    GUARANTOR = "guarantor"
    THIRD_PARTY = "third_party"


class Purpose(StrEnum):
    COLLECTION = "collection"
    VALIDATION_NOTICE = "validation_notice"  # US Reg F 1006.34
    FORBEARANCE_OFFER = "forbearance_offer"  # UK CONC 7.3
    DEMAND = "demand"  # formal demand / default notice
    LOCATION = "location"  # third-party location inquiry, never disclosing the debt


class AttemptResult(StrEnum):
    SENT = "sent"  # a message delivered to the channel, or a call placed, outcome unknown
    ANSWERED = "answered"  # a call answered: a conversation with the recipient
    UNANSWERED = "unanswered"
    FAILED = "failed"  # invalid number, bounced, undeliverable
    REFUSED = "refused"  # the recipient refused (a third party refusing further contact)


class ContactEvent(BaseModel):
    """One contact attempt in the history, with what came of it."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    channel: Channel
    address: str
    recipient_kind: RecipientKind = RecipientKind.DEBTOR
    purpose: Purpose = Purpose.COLLECTION
    result: AttemptResult = AttemptResult.SENT


class HoldKind(StrEnum):
    HARDSHIP = "hardship"
    BREATHING_SPACE = "breathing_space"  # UK Debt Respite Scheme
    MENTAL_HEALTH_CRISIS = "mental_health_crisis"


class Hold(BaseModel):
    """A period in which contact and enforcement are frozen; `end` None = until lifted."""

    kind: HoldKind
    start: datetime
    end: datetime | None = None
    reference: str = ""

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


class InconvenientTime(BaseModel):
    """A local time window the borrower named as inconvenient (US Reg F 1006.6(b)(1))."""

    model_config = ConfigDict(frozen=True)

    start: time
    end: time
    weekdays: list[int] = Field(default_factory=lambda: list(range(7)),
                                description="0 = Monday ... 6 = Sunday")

    @model_validator(mode="after")
    def _check(self) -> InconvenientTime:
        if self.start == self.end:
            raise ValueError("an inconvenient time needs start != end")
        if not self.weekdays or any(d not in range(7) for d in self.weekdays):
            raise ValueError("weekdays must be numbers 0 (Monday) to 6 (Sunday)")
        return self


class Standing(BaseModel):
    """The borrower's contact preferences, protections and disputes, as of now."""

    opted_out: dict[Channel, datetime] = Field(default_factory=dict)
    inconvenient: list[InconvenientTime] = Field(default_factory=list)
    cease_communication_at: datetime | None = None
    attorney_at: datetime | None = None
    dispute_opened_at: datetime | None = None
    dispute_verified_at: datetime | None = None
    holds: list[Hold] = Field(default_factory=list)
    bankruptcy_at: datetime | None = None
    deceased_at: datetime | None = None
    refused_third_parties: list[str] = Field(default_factory=list)
    validation_notice_at: datetime | None = None
    forbearance_offered_at: datetime | None = None

    @property
    def dispute_open(self) -> bool:
        opened, verified = self.dispute_opened_at, self.dispute_verified_at
        return opened is not None and (verified is None or verified < opened)

    def hold_at(self, moment: datetime) -> Hold | None:
        return next((h for h in self.holds if h.covers(moment)), None)


class ProposedContact(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: Channel
    at: datetime
    address: str
    recipient_kind: RecipientKind = RecipientKind.DEBTOR
    purpose: Purpose = Purpose.COLLECTION
    collectors: int = Field(default=1, ge=1, description="people on a home visit")
    discloses_debt: bool = True


class Verdict(StrEnum):
    ALLOWED = "allowed"
    DEFERRED = "deferred"
    BLOCKED = "blocked"


class Violation(BaseModel):
    """A rule a contact would break: stable `code`, the pack's `rule` reference, detail."""

    model_config = ConfigDict(frozen=True)

    code: str
    rule: str
    detail: str


class Decision(BaseModel):
    verdict: Verdict
    at: datetime
    until: datetime | None = None  # deferred: the earliest lawful time
    valid_until: datetime | None = None  # allowed: the contact must be made before this
    code: str = ""
    rule: str = ""
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED

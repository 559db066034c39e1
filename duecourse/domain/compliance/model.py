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
    MESSAGE = "message"  # a third party asked to pass on a message, never disclosing the debt


class AttemptResult(StrEnum):
    SENT = "sent"  # a message delivered to the channel, or a call placed, outcome unknown
    ANSWERED = "answered"  # a call answered: a conversation with the recipient
    UNANSWERED = "unanswered"  # the call connected (rang, voicemail) but nobody talked
    FAILED = "failed"  # never connected: invalid number, bounced, undeliverable
    REFUSED = "refused"  # the recipient refused (a third party refusing further contact)


def person_of(recipient_kind: RecipientKind, address: str, person: str = "") -> str:
    """Who a contact is with: the limits of Reg F 1006.14 and GB/T 45251 count per person,
    all of one person's numbers together. The debtor is one person ("debtor", whatever
    `person` says); anyone else is who the caller names (`person`), else their address,
    keyed under their kind, so a guarantor named "debtor" is never the debtor and a third
    party never a guarantor of the same name."""
    if recipient_kind is RecipientKind.DEBTOR:
        return "debtor"
    return f"{recipient_kind}:{person or address}"


class _Contact(BaseModel):
    """What a contact made and a contact proposed both say: when, how, to whom, and why."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    channel: Channel
    address: str
    recipient_kind: RecipientKind = RecipientKind.DEBTOR
    purpose: Purpose = Purpose.COLLECTION
    person: str = ""  # who, when a guarantor or third party has several numbers

    @property
    def who(self) -> str:
        return person_of(self.recipient_kind, self.address, self.person)


def same_person(a: _Contact, b: _Contact) -> bool:
    """Whether two contacts were with the same person: the debtor is one person; anyone
    else is the same when both are named alike - or, where either is unnamed, when they
    were reached at the same address (so naming a guarantor on one call and not on the
    next never splits them in two)."""
    if a.recipient_kind is not b.recipient_kind:
        return False
    if a.recipient_kind is RecipientKind.DEBTOR:
        return True
    if a.person and b.person:
        return a.person == b.person
    return a.address == b.address


class ContactEvent(_Contact):
    """One contact attempt in the history, with what came of it."""

    result: AttemptResult = AttemptResult.SENT
    inbound: bool = False  # they called us: a conversation (it starts the quiet period
    # after a conversation), never a call we placed (no call limit counts it)


class HoldKind(StrEnum):
    HARDSHIP = "hardship"
    BREATHING_SPACE = "breathing_space"  # UK Debt Respite Scheme
    MENTAL_HEALTH_CRISIS = "mental_health_crisis"  # UK: crisis treatment + 30 days
    MENTAL_CAPACITY = "mental_capacity"  # UK CONC 7.10.1R: may lack capacity, suspend


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
    dispute_written: bool = False  # the open dispute was made in writing (US 1006.38(d))
    dispute_verified_at: datetime | None = None
    holds: list[Hold] = Field(default_factory=list)
    bankruptcy_at: datetime | None = None
    deceased_at: datetime | None = None
    refused_third_parties: list[str] = Field(default_factory=list)
    recontact_invited: list[str] = Field(
        default_factory=list, description="third parties (person keys) who asked to be "
        "contacted again, or whose earlier answer proved wrong (15 USC 1692b(3))")
    validation_notice_at: datetime | None = None
    forbearance_offered_at: datetime | None = None
    esign_consent_at: datetime | None = None  # consent to electronic notices (1006.42)
    sms_consent_at: datetime | None = None  # consent to SMS; None again once withdrawn
    workplace_contact_prohibited_at: datetime | None = None  # employer forbids (1006.6(b)(3))
    employer_provided: list[str] = Field(
        default_factory=list, description="addresses the employer provided (1006.22(f)(3))")

    @property
    def dispute_open(self) -> bool:
        opened, verified = self.dispute_opened_at, self.dispute_verified_at
        return opened is not None and (verified is None or verified < opened)

    def hold_at(self, moment: datetime) -> Hold | None:
        return next((h for h in self.holds if h.covers(moment)), None)


class ProposedContact(_Contact):
    """A contact the collection means to make: what the engine decides on."""

    collectors: int = Field(default=1, ge=1, description="people on a home visit")
    discloses_debt: bool = True
    at_workplace: bool = False  # a call to a work number or a visit at work


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

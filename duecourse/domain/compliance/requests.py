"""What platforms and agents send about a borrower's protections and contact wishes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from duecourse.domain.actor import Actor
from duecourse.domain.case.commands import Note
from duecourse.domain.compliance.model import HoldKind, InconvenientTime, Purpose, RecipientKind
from duecourse.domain.policy import Channel


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Attorney(_Request):
    name: str = Field(min_length=1, max_length=200)
    contact: str = Field(min_length=1, max_length=320)


EmployerAddress = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                   max_length=320)]


class PreferenceChange(_Request):
    """Opt-outs (per channel), re-consent, inconvenient times, cease, attorney; consent to
    electronic notices and to SMS, an employer's ban on contact at work, addresses the
    employer gave."""

    opt_out: list[Channel] = Field(default_factory=list)
    opt_in: list[Channel] = Field(default_factory=list)
    inconvenient_times: list[InconvenientTime] | None = Field(
        default=None, max_length=14, description="replaces the list when given")
    cease_communication: bool = False
    attorney: Attorney | None = None
    esign_consent: bool = Field(
        default=False, description="the consumer consented to electronic notices "
        "(E-SIGN Act, 12 CFR 1006.42)")
    sms_consent: Literal["given", "withdrawn"] | None = Field(
        default=None, description="the borrower gave or withdrew consent to SMS (a policy "
        "may require it before any SMS: `sms_needs_consent`)")
    workplace_contact_prohibited: bool = Field(
        default=False, description="the consumer's employer prohibits contact at the place "
        "of employment (12 CFR 1006.6(b)(3))")
    employer_provided: list[EmployerAddress] = Field(
        default_factory=list, max_length=10, description="email addresses the consumer's "
        "employer provided: never used for email (12 CFR 1006.22(f)(3))")
    actor: Actor
    note: Note = ""

    @model_validator(mode="after")
    def _something(self) -> PreferenceChange:
        if set(self.opt_out) & set(self.opt_in):
            raise ValueError("a channel cannot be opted out and in at once")
        if not (self.opt_out or self.opt_in or self.inconvenient_times is not None
                or self.cease_communication or self.attorney or self.esign_consent
                or self.sms_consent or self.workplace_contact_prohibited
                or self.employer_provided):
            raise ValueError("the change is empty: give at least one opt-out, opt-in, "
                             "inconvenient times, cease, attorney, E-SIGN consent, SMS "
                             "consent, workplace prohibition or employer-provided address")
        return self


class DisputeChange(_Request):
    """A dispute opened by the borrower, or verification sent to them."""

    action: Literal["opened", "verified"]
    actor: Actor
    reason: Note = Field(min_length=1)
    written: bool = Field(
        default=False, description="the dispute was made in writing (US law stops "
        "collection only for a written dispute within the validation period, 12 CFR "
        "1006.38(d)(2))")

    @model_validator(mode="after")
    def _written_opens(self) -> DisputeChange:
        if self.written and self.action != "opened":
            raise ValueError("written says how a dispute was opened; a verification is "
                             "not written or oral")
        return self


class HoldRequest(_Request):
    """Start or end a hold that freezes contact and enforcement.

    Hardship: for `days`. Breathing space (GB): its length is set by law. Mental health
    crisis: until the crisis treatment ends; where the pack says so (GB) the moratorium
    then runs on for a fixed period after the "end". Mental capacity (CONC 7.10.1R, every
    jurisdiction): recovery is suspended until someone ends the hold."""

    action: Literal["start", "end"]
    kind: HoldKind
    days: int | None = Field(default=None, ge=1, le=366,
                             description="hardship: required; breathing space: set by law; "
                             "mental health crisis and mental capacity: until ended")
    reference: str = Field(default="", max_length=128)
    actor: Actor
    note: Note = ""

    @model_validator(mode="after")
    def _days(self) -> HoldRequest:
        if self.action == "start" and self.days is not None and \
                self.kind is HoldKind.MENTAL_CAPACITY:
            raise ValueError("a mental capacity hold lasts until it is ended; it takes no "
                             "days")
        return self


class LifeEvent(_Request):
    kind: Literal["bankruptcy", "deceased"]
    actor: Actor
    reference: str = Field(default="", max_length=128)
    note: Note = ""


class ContactRequest(_Request):
    """An agent asks, before acting, whether a contact may happen now."""

    channel: Channel
    actor: Actor
    recipient_kind: RecipientKind = RecipientKind.DEBTOR
    purpose: Purpose = Purpose.COLLECTION
    address: str | None = Field(default=None, max_length=320,
                                description="default: the borrower's address on the channel")
    collectors: int = Field(default=1, ge=1, le=10)
    discloses_debt: bool = True
    person: str | None = Field(
        default=None, min_length=1, max_length=128, description="who, when a guarantor or "
        "third party has several numbers: the call limits count per person")
    at_workplace: bool = Field(default=False, description="a call to a work number or a "
                               "visit at the place of employment")

    @model_validator(mode="after")
    def _who(self) -> ContactRequest:
        if self.recipient_kind is RecipientKind.DEBTOR:
            if self.person is not None:
                raise ValueError("person names a guarantor or third party; the debtor is "
                                 "always one person")
        elif self.address is None:
            raise ValueError(f"a contact with a {self.recipient_kind.value.replace('_', ' ')} "
                             "needs their address (the default is the borrower's own)")
        return self

"""What platforms and agents send about a borrower's protections and contact wishes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from duecourse.domain.actor import Actor
from duecourse.domain.compliance.model import HoldKind, InconvenientTime, Purpose, RecipientKind
from duecourse.domain.policy import Channel
from duecourse.domain.requests import Note


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Attorney(_Request):
    name: str = Field(min_length=1, max_length=200)
    contact: str = Field(min_length=1, max_length=320)


class PreferenceChange(_Request):
    """Opt-outs (per channel), re-consent, inconvenient times, cease, attorney."""

    opt_out: list[Channel] = Field(default_factory=list)
    opt_in: list[Channel] = Field(default_factory=list)
    inconvenient_times: list[InconvenientTime] | None = Field(
        default=None, max_length=14, description="replaces the list when given")
    cease_communication: bool = False
    attorney: Attorney | None = None
    actor: Actor
    note: Note = ""

    @model_validator(mode="after")
    def _something(self) -> PreferenceChange:
        if set(self.opt_out) & set(self.opt_in):
            raise ValueError("a channel cannot be opted out and in at once")
        if not (self.opt_out or self.opt_in or self.inconvenient_times is not None
                or self.cease_communication or self.attorney):
            raise ValueError("the change is empty")
        return self


class DisputeChange(_Request):
    """A dispute opened by the borrower, or verification sent to them."""

    action: Literal["opened", "verified"]
    actor: Actor
    reason: Note = Field(min_length=1)


class HoldRequest(_Request):
    """Start or end a hold that freezes contact and enforcement."""

    action: Literal["start", "end"]
    kind: HoldKind
    days: int | None = Field(default=None, ge=1, le=366,
                             description="hardship: required; breathing space: set by law")
    reference: str = Field(default="", max_length=128)
    actor: Actor
    note: Note = ""


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

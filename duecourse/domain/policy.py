"""A collection policy is data: what to do when, per stage, with operator-tunable limits.

Policies are loaded from YAML (see `duecourse.policies`) and frozen into each workflow at
start, so a loan is always handled by the exact policy version recorded in its ledger.
"""

from __future__ import annotations

from datetime import time, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"
    LETTER = "letter"
    VISIT = "visit"  # a home or field visit by collectors


class Anchor(StrEnum):
    """What a step's offset counts from."""

    DUE_DATE = "due_date"  # local midnight at the start of the due date, in wall-clock days
    STAGE_ENTRY = "stage_entry"  # the instant the loan entered the stage


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactStep(_Model):
    """One scheduled contact: `offset` after `anchor`, on `channel`, using `template`."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")
    channel: Channel
    template: str = Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")
    anchor: Anchor = Anchor.STAGE_ENTRY
    offset: timedelta = timedelta(0)

    @model_validator(mode="after")
    def _non_negative(self) -> ContactStep:
        if self.offset < timedelta(0):
            raise ValueError(f"step {self.name}: offset must not be negative")
        return self


class ContactHours(_Model):
    """Local hours in which borrower contact may happen; letters are not restricted."""

    start: time = time(8, 0)
    end: time = time(21, 0)

    @model_validator(mode="after")
    def _order(self) -> ContactHours:
        if self.start == self.end:
            raise ValueError("contact hours: start and end must differ")
        return self


def _unique_steps(steps: list[ContactStep], stage: str) -> None:
    names = [s.name for s in steps]
    if len(names) != len(set(names)):
        raise ValueError(f"{stage}: step names must be unique, got {names}")


class ReminderStage(_Model):
    """Early stage: tell the borrower the loan is overdue and what happens next."""

    steps: list[ContactStep]
    window: timedelta = Field(description="stage length, counted from window_anchor")
    window_anchor: Anchor = Anchor.DUE_DATE
    minimum_notice: timedelta = Field(
        default=timedelta(days=7),
        description="time the borrower gets after the first reminder before negotiation",
    )

    @model_validator(mode="after")
    def _check(self) -> ReminderStage:
        _unique_steps(self.steps, "reminder")
        return self


class NegotiationStage(_Model):
    """Agent-led stage: agree a promise to pay (plans and settlements build on this)."""

    steps: list[ContactStep]
    window: timedelta = Field(
        description="time without an agreement before legal; restarts when a promise is kept"
    )

    @model_validator(mode="after")
    def _check(self) -> NegotiationStage:
        _unique_steps(self.steps, "negotiation")
        return self


class PromiseRules(_Model):
    """Promise-to-pay limits (practitioner norms: checked after the date plus grace)."""

    max_days_ahead: int = Field(default=14, ge=0)
    max_days_ahead_after_broken: int = Field(default=7, ge=0)
    grace_days: int = Field(default=3, ge=0)
    max_broken: int = Field(default=2, ge=1, description="broken promises before legal")


class LegalStage(_Model):
    """Formal demand, a cure period, then a supervisor approves referral to litigation."""

    demand_letter: ContactStep
    cure_period: timedelta = Field(default=timedelta(days=14))
    approval_timeout: timedelta = Field(
        default=timedelta(days=5), description="re-escalated to ops each time it passes"
    )


DEFAULT_FALLBACKS: dict[Channel, list[Channel]] = {
    Channel.SMS: [Channel.EMAIL, Channel.VOICE],
    Channel.EMAIL: [Channel.SMS, Channel.LETTER],
    Channel.VOICE: [Channel.SMS, Channel.EMAIL],
    Channel.LETTER: [Channel.EMAIL],
    Channel.VISIT: [],
}


class Policy(_Model):
    """A named, versioned collection strategy."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    version: str = "1"
    description: str = ""
    contact_hours: ContactHours | None = ContactHours()
    reminder: ReminderStage
    negotiation: NegotiationStage
    promise: PromiseRules = PromiseRules()
    legal: LegalStage
    write_off_dpd: int = Field(default=180, ge=1)
    channel_fallbacks: dict[Channel, list[Channel]] = Field(
        default_factory=lambda: dict(DEFAULT_FALLBACKS),
        description="channels tried, in order, when a step's channel is opted out or "
                    "has no contact details")
    compliance: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="rule-pack parameters overridden per jurisdiction (CN, US, GB or *)")

    @model_validator(mode="after")
    def _valid_overrides(self) -> Policy:
        from duecourse.domain.compliance.packs import pack_for  # packs import this module

        for jurisdiction in self.compliance:
            try:
                pack_for("ZZ" if jurisdiction == "*" else jurisdiction, self.compliance)
            except ValueError as err:
                raise ValueError(f"compliance overrides for {jurisdiction}: {err}") from err
        return self

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

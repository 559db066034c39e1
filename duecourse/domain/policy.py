"""A collection policy is data: what to do when, per stage, with operator-tunable limits.

Policies are loaded from YAML (see `duecourse.policies`) and frozen into each workflow at
start, so a loan is always handled by the exact policy version recorded in its ledger.
"""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from duecourse.domain.ids import POLICY_NAME_PATTERN


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
    as_task: bool = Field(default=False, description="create an agent task (call the "
                          "borrower, field visit) instead of sending a message")
    templates: dict[Channel, str] = Field(
        default_factory=dict, description="borrower templates for the channels this step "
        "may fall back to (the policy loader fills them in from the template catalogue); "
        "a fallback channel without one is not used")
    supersedable: bool = Field(
        default=False, description="a stale nudge: skipped when a later step of the stage "
        "is already due (never the borrower's first contact); a step that is not "
        "supersedable is sent late, within lawful hours, instead of being dropped")
    legal_action_channels: list[Channel] = Field(
        default_factory=list, description="the channels on which this step's template "
        "speaks of legal action (the policy loader fills them in from the template "
        "catalogue): on a time-barred debt the step never uses them - it falls back to a "
        "channel whose template does not, or is skipped (12 CFR 1006.26(b))")

    @model_validator(mode="after")
    def _non_negative(self) -> ContactStep:
        if self.offset < timedelta(0):
            raise ValueError(f"step {self.name}: offset must not be negative")
        return self

    def template_for(self, channel: Channel) -> str | None:
        """The template this step sends on `channel`, or None when it has none for it."""
        return self.template if channel is self.channel else self.templates.get(channel)

    @property
    def mentions_legal_action(self) -> bool:
        """Some template this step may send speaks of legal action."""
        return bool(self.legal_action_channels)

    def speaks_of_legal_action(self, channel: Channel) -> bool:
        """The template this step sends on `channel` speaks of legal action."""
        return channel in self.legal_action_channels


class ContactHours(_Model):
    """Local hours in which borrower contact may happen; letters are not restricted."""

    start: time = time(8, 0)
    end: time = time(21, 0)
    end_inclusive: bool = Field(default=False, description="the end minute itself is "
                                "allowed (Reg F: nothing 'after 9:00 p.m.')")

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
    partner: str = Field(default="Partner Law LLP", min_length=1,
                         description="the legal partner approved cases are referred to")


class PlanRules(_Model):
    """Limits an agent's instalment plan must respect (practitioner norms, reference)."""

    max_instalments: int = Field(default=12, ge=1, le=60)
    min_instalment_ratio: Decimal = Field(default=Decimal("0.05"), ge=0, le=1,
                                          description="of the outstanding balance")
    min_down_payment_ratio: Decimal = Field(default=Decimal("0"), ge=0, le=1,
                                            description="first instalment, of the balance")
    max_days_to_first_payment: int = Field(default=30, ge=0)
    max_interval_days: int = Field(default=31, ge=1)
    grace_days: int = Field(default=3, ge=0)
    tolerated_late: int = Field(default=1, ge=0, description="late instalments tolerated")
    reminder_days_before: int = Field(default=2, ge=0)
    on_broken: Literal["negotiation", "legal"] = "negotiation"
    unpaid_at_end: Literal["broken", "lapsed"] = Field(
        default="broken", description="when the last instalment's grace has passed with "
        "instalments still unpaid: the plan is broken (counts as broken, on_broken applies) "
        "or lapses (ends without counting as broken; negotiation resumes)")


class SettlementRules(_Model):
    """Discounted settlements: agents up to a limit, supervisors down to a floor."""

    agent_max_discount: Decimal = Field(default=Decimal("0.20"), ge=0, lt=1)
    floor_ratio: Decimal = Field(default=Decimal("0.40"), gt=0, le=1,
                                 description="never settle for less than this share")
    max_days_to_pay: int = Field(default=14, ge=0)
    grace_days: int = Field(default=2, ge=0)


class TaskRules(_Model):
    """Service levels for the agent work queue; a missed SLA escalates to supervisors."""

    call_sla: timedelta = timedelta(days=1)
    visit_sla: timedelta = timedelta(days=3)
    hardship_review_sla: timedelta = timedelta(days=3)
    approval_sla: timedelta = timedelta(days=2)
    supervisor_queue: str = "supervisors"
    default_queue: str = "agents"


class Segment(StrEnum):
    SELF_CURE = "self_cure"  # forgetters: light digital nudges
    CANT_PAY = "cant_pay"  # willing, unable: restructure with a plan
    WONT_PAY = "wont_pay"  # able, unwilling: disputes first, then consequences
    UNREACHABLE = "unreachable"


class Treatment(_Model):
    """How a segment is treated: which channels, how often, what plans."""

    cadence: Decimal = Field(default=Decimal(1), gt=0, le=10,
                             description="multiplies step offsets (2 = half as often)")
    channels: list[Channel] | None = Field(default=None,
                                           description="allowed channels; None = all")
    max_instalments: int | None = Field(default=None, ge=1, le=60)


DEFAULT_FALLBACKS: dict[Channel, list[Channel]] = {
    Channel.SMS: [Channel.EMAIL, Channel.VOICE],
    Channel.EMAIL: [Channel.SMS, Channel.LETTER],
    Channel.VOICE: [Channel.SMS, Channel.EMAIL],
    Channel.LETTER: [Channel.EMAIL],
    Channel.VISIT: [],
}


class DemoClock(_Model):
    """Demonstrations only: the day-based rules that would keep a demo waiting for days,
    compressed to minutes. A policy for real borrowers leaves this out (`duecourse
    policy` shows it when set): promises and write-off then keep their calendar meaning."""

    promise_judged_after: timedelta = Field(
        gt=timedelta(0), description="a promise is judged this long after it is made, "
        "when that is sooner than its date plus grace")
    write_off_after: timedelta = Field(
        gt=timedelta(0), description="an open loan is written off this long after it "
        "was handed over, when that is sooner than the write-off DPD")


class Policy(_Model):
    """A named, versioned collection strategy."""

    name: str = Field(pattern=POLICY_NAME_PATTERN)
    version: str = "1"
    description: str = ""
    contact_hours: ContactHours | None = ContactHours()
    reminder: ReminderStage
    negotiation: NegotiationStage
    promise: PromiseRules = PromiseRules()
    plans: PlanRules = PlanRules()
    settlements: SettlementRules = SettlementRules()
    tasks: TaskRules = TaskRules()
    segments: dict[Segment, Treatment] = Field(default_factory=dict)
    legal: LegalStage
    write_off_dpd: int = Field(default=180, ge=1)
    portal_link_days: int | None = Field(
        default=None, ge=1, le=366,
        description="days the borrower's page link in a message stays valid from its "
                    "send; unset: the DUECOURSE_PORTAL_LINK_DAYS setting (30)")
    demo: DemoClock | None = Field(
        default=None, description="demonstrations only: day-based rules compressed")
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

    def treatment(self, segment: Segment | None) -> Treatment:
        return self.segments.get(segment, Treatment()) if segment else Treatment()

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

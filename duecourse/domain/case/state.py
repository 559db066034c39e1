"""The state of one loan in collection: what the aggregate (`case.aggregate`) mutates and
what continue-as-new carries from run to run."""

from __future__ import annotations

import zlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, model_validator

from duecourse.domain.actor import Actor
from duecourse.domain.agreements.terms import (
    PlanStatus,
    RepaymentPlan,
    Settlement,
    SettlementStatus,
)
from duecourse.domain.case.flat_state import nest_flat_state
from duecourse.domain.compliance import (
    ContactEvent,
    Standing,
)
from duecourse.domain.legal.case import LegalCase
from duecourse.domain.policy import Segment
from duecourse.domain.rules import RulesSnapshot
from duecourse.domain.work.queue import Task, TaskStatus


class Stage(StrEnum):
    REMINDER = "REMINDER"
    NEGOTIATION = "NEGOTIATION"
    LEGAL = "LEGAL"


class Outcome(StrEnum):
    PAID = "PAID"
    SETTLED = "SETTLED"
    WRITTEN_OFF = "WRITTEN_OFF"
    CANCELLED = "CANCELLED"


class LegalPhase(StrEnum):
    DEMAND_PENDING = "DEMAND_PENDING"
    CURE_PERIOD = "CURE_PERIOD"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    REFERRED = "REFERRED"


class PromiseStatus(StrEnum):
    ACTIVE = "ACTIVE"
    KEPT = "KEPT"
    BROKEN = "BROKEN"
    WITHDRAWN = "WITHDRAWN"  # the loan closed or left the stage before the check


class StageVisit(BaseModel):
    visit: int
    stage: Stage
    entered_at: datetime
    reason: str
    actor: Actor
    left_at: datetime | None = None
    paused: timedelta = timedelta(0)  # time frozen by disputes and holds during the visit


class Promise(BaseModel):
    promise_id: str
    amount: Decimal
    currency: str
    due_date: date
    made_at: datetime
    check_at: datetime
    actor: Actor
    paid_before: Decimal
    status: PromiseStatus = PromiseStatus.ACTIVE
    resolved_at: datetime | None = None
    note: str = ""


class StepStatus(StrEnum):
    """What became of a planned step (stored as its value in the continue-as-new state)."""

    SENT = "sent"
    SKIPPED = "skipped"  # stopped before it went, superseded, or nothing fit to send
    FAILED = "failed"  # the channel refused it
    BLOCKED = "blocked"  # the rules forbade it, or nobody to send it to
    TASK = "task"  # handed to a person as a task


class StepRecord(BaseModel):
    visit: int
    step: str
    status: StepStatus
    at: datetime
    detail: str = ""


class ContactingState(BaseModel):
    """What reaching the borrower has done so far: the planned steps, the contacts the
    rules count, and what the borrower asked of us."""

    steps: list[StepRecord] = Field(default_factory=list)
    first_contact_at: datetime | None = None
    standing: Standing = Field(default_factory=Standing)
    contacts: list[ContactEvent] = Field(default_factory=list)
    deferrals: dict[str, datetime] = Field(default_factory=dict)
    forbearance_pending: bool = False
    decision_counts: dict[str, int] = Field(
        default_factory=dict, description="engine decisions so far per visit, step and "
        "channel: a decision's key says which one it is, whatever else happened between")
    late_skips: int = 0  # planned steps skipped as stale because the loan got to them late

    @property
    def contacts_sent(self) -> int:
        return sum(r.status is StepStatus.SENT for r in self.steps)

    def step_done(self, visit: int, step: str) -> bool:
        return any(r.visit == visit and r.step == step for r in self.steps)

    def deferral(self, visit: int, step: str) -> datetime | None:
        return self.deferrals.get(f"{visit}:{step}")


class AgreementsState(BaseModel):
    """What the borrower agreed to pay, or refused to."""

    promises: list[Promise] = Field(default_factory=list)
    plans: list[RepaymentPlan] = Field(default_factory=list)
    plan_reminders: list[int] = Field(default_factory=list)  # instalments to remind about
    settlements: list[Settlement] = Field(default_factory=list)
    refusals: int = 0  # times the borrower refused to pay

    @property
    def active_promise(self) -> Promise | None:
        return next((p for p in self.promises if p.status is PromiseStatus.ACTIVE), None)

    @property
    def broken_promises(self) -> int:
        return sum(p.status is PromiseStatus.BROKEN for p in self.promises)

    @property
    def active_plan(self) -> RepaymentPlan | None:
        plan = self.plans[-1] if self.plans else None
        return plan if plan and plan.status is PlanStatus.ACTIVE else None

    @property
    def open_settlement(self) -> Settlement | None:
        last = self.settlements[-1] if self.settlements else None
        live = (SettlementStatus.PENDING_APPROVAL, SettlementStatus.ACCEPTED)
        return last if last and last.status in live else None


class LegalState(BaseModel):
    """Where the loan stands on the way to (and in) legal action."""

    phase: LegalPhase | None = None
    phase_at: datetime | None = None
    approval_escalations: int = 0
    barred: str = ""  # rule code that keeps this loan out of legal for good
    not_before: datetime | None = None
    demand_requested: bool = False  # the legal case asked for its demand letter
    cases: list[LegalCase] = Field(default_factory=list)  # mirrors of the children

    @property
    def case(self) -> LegalCase | None:
        """The legal case of the current legal stage, while it runs."""
        case = self.cases[-1] if self.cases else None
        return case if case and case.outcome is None else None


class WorkState(BaseModel):
    """The people's side of the case: who owns it and what they were asked to do."""

    assigned_agent: str | None = None
    tasks: list[Task] = Field(default_factory=list)

    @property
    def open_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.status is TaskStatus.OPEN]


class CollectionState(BaseModel):
    """Everything the workflow remembers; also the continue-as-new payload. The case's own
    facts sit at the top; contacting, agreements, legal and work each keep their part."""

    case_id: str  # first run id of the workflow chain: keys this case's ledger rows
    opened_at: datetime
    outstanding: Decimal
    stage: Stage = Stage.REMINDER
    visits: list[StageVisit] = Field(default_factory=list)
    outcome: Outcome | None = None
    closed_at: datetime | None = None
    close_reason: str = ""
    total_paid: Decimal = Decimal(0)
    payment_refs: list[str] = Field(default_factory=list)
    last_paid_at: datetime | None = None  # the latest payment while in collection
    negotiation_deadline: datetime | None = None
    event_seq: int = 0
    paused_since: datetime | None = None
    segment: Segment | None = None
    segment_reasons: list[str] = Field(default_factory=list)
    rescore: bool = True  # behaviour changed since the last score
    rules: RulesSnapshot | None = None  # pack, holidays and zone rules, taken at hand-over
    alert_seq: int = 0  # numbers ops alerts: each alert's key is fixed when it is queued
    attention: dict[str, str] = Field(
        default_factory=dict, description="why the loan cannot go on by itself, by kind "
        "(e.g. ledger): shown as the NeedsAttention search attribute")
    contacting: ContactingState = Field(default_factory=ContactingState)
    agreements: AgreementsState = Field(default_factory=AgreementsState)
    legal: LegalState = Field(default_factory=LegalState)
    work: WorkState = Field(default_factory=WorkState)

    @model_validator(mode="before")
    @classmethod
    def _load_flat_shape(cls, data: Any) -> Any:
        """A state carried by 0.3 (its continue-as-new inputs, saved histories) is flat."""
        return nest_flat_state(data) if isinstance(data, dict) else data

    # ----------------------------------------------------------------- queries
    @property
    def visit(self) -> StageVisit:
        return self.visits[-1]

    @property
    def is_closed(self) -> bool:
        return self.outcome is not None

    @property
    def agreement_active(self) -> bool:
        """A promise, plan or settlement is running: routine contact pauses."""
        a = self.agreements
        return bool(a.active_promise or a.active_plan or a.open_settlement)

    def next_alert_key(self, subject: str) -> str:
        """`alert:<n>:<subject digest>`: a run that resets and raises other alerts in
        another order never has one taken for another (and dropped as a duplicate)."""
        self.alert_seq += 1
        return f"alert:{self.alert_seq}:{zlib.crc32(subject.encode()):08x}"

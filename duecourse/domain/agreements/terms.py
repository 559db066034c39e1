"""What agents agree with borrowers: instalment plans, settlements, and their requests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from duecourse.domain.actor import Actor
from duecourse.domain.case.commands import Command, Note
from duecourse.domain.ids import AgentId
from duecourse.domain.money import Money


# --------------------------------------------------------------------------- plans
class InstalmentSpec(Command):
    due_date: date
    amount: Money


class PlanProposal(Command):
    """An instalment plan an agent agreed with the borrower, awaiting the policy's yes."""

    instalments: list[InstalmentSpec] = Field(min_length=1, max_length=60)
    actor: Actor
    note: Note = ""

    @model_validator(mode="after")
    def _ordered(self) -> PlanProposal:
        dates = [i.due_date for i in self.instalments]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("instalment due dates must be strictly increasing")
        if len({i.amount.currency for i in self.instalments}) != 1:
            raise ValueError("all instalments must be in one currency")
        return self


class InstalmentStatus(StrEnum):
    DUE = "due"
    PAID = "paid"
    LATE = "late"  # not paid by its date + grace; may still be paid


class Instalment(BaseModel):
    number: int
    due_date: date
    amount: Decimal
    paid: Decimal = Decimal(0)
    status: InstalmentStatus = InstalmentStatus.DUE

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.paid


class PlanStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    BROKEN = "BROKEN"
    LAPSED = "LAPSED"  # the schedule ended with instalments unpaid (policy: unpaid_at_end)
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"  # its workflow stopped unexpectedly (failed, timed out, terminated)


class RepaymentPlan(BaseModel):
    plan_id: str
    workflow_id: str
    currency: str
    instalments: list[Instalment]
    status: PlanStatus = PlanStatus.ACTIVE
    agreed_at: datetime
    actor: Actor
    late: int = 0
    note: str = ""
    version: int = 1  # bumped by the plan workflow on every change
    paused_days: int = 0  # days given back for holds, disputes and breathing space

    @property
    def total(self) -> Decimal:
        return sum((i.amount for i in self.instalments), Decimal(0))

    @property
    def paid(self) -> Decimal:
        return sum((i.paid for i in self.instalments), Decimal(0))


class PlanAccepted(BaseModel):
    plan_id: str
    workflow_id: str
    instalments: list[Instalment]
    total: Money


# --------------------------------------------------------------------------- settlements
class SettlementOffer(Command):
    """Settle for `amount` paid by `pay_by`; the rest is waived once it is paid."""

    amount: Money
    pay_by: date
    actor: Actor
    note: Note = ""


class SettlementDecision(Command):
    approve: bool
    actor: Actor
    reason: Note = Field(min_length=1)


class SettlementStatus(StrEnum):
    PENDING_APPROVAL = "PENDING_APPROVAL"
    ACCEPTED = "ACCEPTED"
    PAID = "PAID"
    REJECTED = "REJECTED"
    LAPSED = "LAPSED"
    WITHDRAWN = "WITHDRAWN"


class Settlement(BaseModel):
    settlement_id: str
    amount: Decimal
    currency: str
    balance_at_offer: Decimal
    pay_by: date
    check_at: datetime
    discount: Decimal
    status: SettlementStatus
    offered_by: Actor
    decided_by: Actor | None = None
    paid_before: Decimal
    waived: Decimal = Decimal(0)
    task_id: str | None = None
    note: str = ""
    version: int = 0  # bumped each time it is recorded


class SettlementResult(BaseModel):
    settlement_id: str
    status: SettlementStatus
    amount: Money
    discount: Decimal
    needs_approval: bool
    task_id: str | None = None


# --------------------------------------------------------------------------- assignment
class Assignment(Command):
    agent_id: AgentId
    actor: Actor
    note: Note = ""


class AssignmentResult(BaseModel):
    assigned_agent: str
    previous: str | None


# --------------------------------------------------------------------------- plan child
class PlanInput(BaseModel):
    """What the RepaymentPlanWorkflow child needs; it never contacts anyone itself."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    plan: RepaymentPlan
    parent_workflow_id: str
    timezone: str
    zone_rules: bytes | None = Field(default=None, description="the loan's snapshot of the "
                                     "zone's rules: the schedule follows them")
    grace_days: int
    tolerated_late: int
    reminder_days_before: int
    frozen: bool = False  # agreed while collection is frozen: the schedule waits too
    unpaid_at_end: Literal["broken", "lapsed"] = "broken"


class PlanPayment(BaseModel):
    reference: str
    amount: Decimal


class PlanProgress(BaseModel):
    """The child's snapshot, signalled to the parent on every change."""

    plan: RepaymentPlan
    event: Literal["reminder", "paid", "late", "broken", "lapsed", "completed", "cancelled",
                   "rescheduled"]
    instalment: int | None = None

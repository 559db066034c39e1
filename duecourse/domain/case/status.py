"""The answer to a loan's `status` query: what ops and agents need at a glance."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from duecourse.domain.agreements.terms import RepaymentPlan, Settlement
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.state import Promise, StageVisit
from duecourse.domain.compliance import Standing
from duecourse.domain.money import Money
from duecourse.domain.planner import PlannedAction
from duecourse.domain.work.queue import Task


class NextAction(BaseModel):
    kind: str
    description: str
    due_at: datetime


class CollectionStatus(BaseModel):
    loan_id: str
    workflow_id: str
    policy: str
    jurisdiction: str
    stage: str
    legal_phase: str | None
    outcome: str | None
    closed_at: datetime | None
    close_reason: str
    outstanding: Money
    total_paid: Money
    days_past_due: int
    as_of: datetime
    next_action: NextAction | None
    active_promise: Promise | None
    broken_promises: int
    contacts_sent: int
    late_skips: int  # planned steps skipped as stale because the loan reached them late
    needs_attention: dict[str, str]  # why it cannot go on by itself (NeedsAttention)
    approval_escalations: int
    stage_history: list[StageVisit]
    rule_pack: str
    frozen: str | None
    standing: Standing
    segment: str | None
    segment_reasons: list[str]
    assigned_agent: str | None
    plan: RepaymentPlan | None
    settlement: Settlement | None
    open_tasks: list[Task]


def describe(c: Collection, now: datetime, action: PlannedAction | None) -> CollectionStatus:
    s = c.state
    currency = c.loan.currency
    return CollectionStatus(
        loan_id=c.loan.loan_id,
        workflow_id=c.loan.workflow_id,
        policy=c.policy.label,
        jurisdiction=c.loan.jurisdiction,
        stage=s.stage,
        legal_phase=s.legal.phase,
        outcome=s.outcome,
        closed_at=s.closed_at,
        close_reason=s.close_reason,
        outstanding=Money(amount=s.outstanding, currency=currency),
        total_paid=Money(amount=s.total_paid, currency=currency),
        days_past_due=c.dpd(s.closed_at or now),
        as_of=now,
        next_action=NextAction(kind=action.kind, description=action.description,
                               due_at=action.due_at) if action else None,
        active_promise=s.agreements.active_promise,
        broken_promises=s.agreements.broken_promises,
        contacts_sent=s.contacting.contacts_sent,
        late_skips=s.contacting.late_skips,
        needs_attention=s.attention,
        approval_escalations=s.legal.approval_escalations,
        stage_history=s.visits,
        rule_pack=c.pack.title,
        frozen=(f"{frozen.code}: {frozen.detail}" if (frozen := c.freeze_reason(now))
                else None),
        standing=s.contacting.standing,
        segment=s.segment,
        segment_reasons=s.segment_reasons,
        assigned_agent=s.work.assigned_agent,
        plan=s.agreements.plans[-1] if s.agreements.plans else None,
        settlement=s.agreements.settlements[-1] if s.agreements.settlements else None,
        open_tasks=s.work.open_tasks,
    )


def current_details(c: Collection, now: datetime, action: PlannedAction | None) -> str:
    """The Temporal UI's current details for the loan: where it is and what comes next.
    No borrower PII - the UI shows it to anyone with access to the cluster."""
    s = c.state
    parts = [s.stage.value if s.outcome is None else f"Closed {s.outcome.value}",
             f"{Money(amount=s.outstanding, currency=c.loan.currency)} outstanding",
             f"DPD {c.dpd(s.closed_at or now)}"]
    if s.legal.phase is not None and s.outcome is None:
        parts.insert(1, s.legal.phase.value)
    if s.outcome is None and (frozen := c.freeze_reason(now)) is not None:
        parts.append(f"frozen ({frozen.code})")
    if action is not None and s.outcome is None:
        parts.append(f"next: {action.description} at "
                     f"{action.due_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC")
    return " · ".join(parts)

"""What the loan does when one of its children (repayment plan or legal case)
ends without reporting an ending of its own: it failed, timed out or was terminated.

The fact is recorded, ops are told, and the loan returns to a live state: an agreement
that can no longer run stops pausing collection, a legal stage whose case is gone goes
back to negotiation (whose window escalates again), so no loan waits for a dead child.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from duecourse.domain.actor import SYSTEM
from duecourse.domain.agreements.deals import plan_ended, plan_record
from duecourse.domain.agreements.terms import PlanStatus
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.state import Stage
from duecourse.domain.entries import LedgerEntry

ChildKind = Literal["plan", "legal_case"]


def child_failed(c: Collection, kind: ChildKind, workflow_id: str, why: str,
                 now: datetime) -> tuple[list[LedgerEntry], str]:
    """The entries proving it and the alert subject for ops."""
    s = c.state
    entries: list[LedgerEntry] = [c.record_event("child_failed", now, child=kind,
                                                 workflow_id=workflow_id, why=why)]
    if kind == "plan":
        plan = next((p for p in s.agreements.plans if p.workflow_id == workflow_id), None)
        if plan is not None and plan.status is PlanStatus.ACTIVE:
            plan.status = PlanStatus.FAILED
            plan.version += 1
            s.agreements.plan_reminders.clear()
            entries.append(plan_record(c, plan, now))
            if not s.is_closed:
                entries += plan_ended(c, f"plan {plan.plan_id} stopped: {why}", now)
            return entries, f"Plan {plan.plan_id} stopped unexpectedly ({why})"
    elif kind == "legal_case":
        case = next((k for k in s.legal.cases if k.workflow_id == workflow_id), None)
        if case is not None and case.outcome is None:
            case.outcome, case.phase, case.phase_at = "failed", "CLOSED", now
            if not s.is_closed and s.stage is Stage.LEGAL:
                s.legal.demand_requested = False
                entries += c.enter_stage(Stage.NEGOTIATION, now,
                                    f"legal case {case.case_ref} stopped: {why}", SYSTEM)
            return entries, f"Legal case {case.case_ref} stopped unexpectedly ({why})"
    return entries, f"{kind.replace('_', ' ').capitalize()} {workflow_id} did not finish ({why})"

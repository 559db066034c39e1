"""The loan's children: repayment plans and legal cases, started once, watched, told.

A child is started with `ParentClosePolicy.ABANDON` and addresses the loan by workflow
id (it signals `parent_workflow_id`, whichever run is current), so the loan may continue
as new while one runs: the child's reports reach the new run, which knows it from the
carried state and signals it by id. The run that started a child watches it; one that
fails, times out or is terminated is reported through `on_failed` (the loan records it,
tells ops and returns to a live state). A child that already existed when started (after
a reset) is adopted and watched through the `await_workflow` activity. A run continued
as new does not watch its predecessor's children that way: a running activity for the
child's whole life would cost an activity per run and, on the time-skipping test server,
stop the clock; it hears of their ends from their own reports.

Handlers cannot await, so they queue starts and signals here; the loop sends them.
Signals are typed: `PlanChild(workflow_id).payment(...)`, `CaseChild(...).close(...)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.agreements import deals
    from duecourse.domain.agreements.terms import PlanInput, PlanPayment, PlanStatus, RepaymentPlan
    from duecourse.domain.case.aggregate import Collection
    from duecourse.domain.case.commands import LegalDecision
    from duecourse.domain.case.supervision import ChildKind
    from duecourse.domain.legal.case import (
        CaseEvent,
        DemandResult,
        LegalCase,
        LegalCaseInput,
        ManualReferral,
    )
    from duecourse.temporal.contracts import AWAIT_WORKFLOW, WorkflowEnding
    from duecourse.temporal.failures import failure_text

ADOPTED_WATCH = timedelta(days=800)
"""An adopted plan or legal case is watched for as long as it may run."""

OnFailed = Callable[[ChildKind, str, str], None]
"""(kind, child workflow id, why): a child ended without reporting an ending."""


@dataclass(frozen=True)
class Signal:
    """One signal for a child, made by the typed APIs below."""

    workflow_id: str
    name: str
    arg: Any = None


@dataclass(frozen=True)
class PlanChild:
    """What the loan tells a RepaymentPlan child."""

    workflow_id: str

    def payment(self, payment: PlanPayment) -> Signal:
        return Signal(self.workflow_id, "payment", payment)

    def freeze(self, frozen: bool) -> Signal:
        return Signal(self.workflow_id, "freeze", frozen)

    def cancel(self) -> Signal:
        return Signal(self.workflow_id, "cancel")


@dataclass(frozen=True)
class CaseChild:
    """What the loan tells a LegalCase child."""

    workflow_id: str

    def demand_result(self, result: DemandResult) -> Signal:
        return Signal(self.workflow_id, "demand_result", result)

    def decision(self, decision: LegalDecision) -> Signal:
        return Signal(self.workflow_id, "decision", decision)

    def case_event(self, event: CaseEvent) -> Signal:
        return Signal(self.workflow_id, "case_event", event)

    def manual_referral(self, referral: ManualReferral) -> Signal:
        return Signal(self.workflow_id, "manual_referral", referral)

    def freeze(self, frozen: bool) -> Signal:
        return Signal(self.workflow_id, "freeze", frozen)

    def close(self, reason: str) -> Signal:
        return Signal(self.workflow_id, "close", reason)


class Children:
    """Queued starts and signals of one loan's children, and the watchers of them."""

    def __init__(self, c: Collection, on_failed: OnFailed) -> None:
        self._c = c
        self._on_failed = on_failed
        self._plans: list[RepaymentPlan] = []
        self._cases: list[LegalCase] = []
        self._signals: list[Signal] = []
        self._frozen = c.state.paused_since is not None
        self._watchers: list[asyncio.Task[None]] = []  # held so the loop keeps them alive

    def pending(self) -> bool:
        return bool(self._plans or self._cases or self._signals)

    def start_plan(self, plan: RepaymentPlan) -> None:
        self._plans.append(plan)

    def start_case(self, case: LegalCase) -> None:
        self._cases.append(case)

    def tell(self, signal: Signal) -> None:
        self._signals.append(signal)

    def follow_freeze(self) -> None:
        """After any change: tell running children when collection froze or resumed."""
        s = self._c.state
        frozen = s.paused_since is not None
        if frozen == self._frozen:
            return
        self._frozen = frozen
        if (case := s.legal.case) is not None:
            self.tell(CaseChild(case.workflow_id).freeze(frozen))
        plan = s.agreements.active_plan
        if plan is not None and plan not in self._plans:  # a queued one starts frozen
            self.tell(PlanChild(plan.workflow_id).freeze(frozen))

    async def sync(self) -> None:
        """Start queued children and send queued signals, in order."""
        c = self._c
        parent = workflow.info().workflow_id
        while self._plans:  # dequeued first: a freeze meanwhile is signalled after it
            agreed, rules = self._plans.pop(0), deals.plan_rules(c)
            await self._start("plan", "RepaymentPlan", PlanInput(
                plan=agreed, parent_workflow_id=parent, timezone=c.loan.borrower.timezone,
                zone_rules=c.state.rules.zone_rules if c.state.rules else None,
                grace_days=rules.grace_days, tolerated_late=rules.tolerated_late,
                reminder_days_before=rules.reminder_days_before, frozen=self._frozen,
                unpaid_at_end=rules.unpaid_at_end),
                agreed.workflow_id, f"Plan {agreed.plan_id} of loan {c.loan.loan_id}")
        while self._cases:
            case = self._cases.pop(0)
            await self._start("legal_case", "LegalCase", LegalCaseInput(
                case=case, parent_workflow_id=parent, collection_case_id=c.state.case_id,
                loan_id=c.loan.loan_id, cure_period=c.cure_period,
                approval_timeout=c.policy.legal.approval_timeout,
                partner=c.policy.legal.partner),
                case.workflow_id, f"Legal case {case.case_ref} of loan {c.loan.loan_id}")
        while self._signals:
            await self._send(self._signals.pop(0))

    def wind_down(self) -> None:
        """On closing: stop running plans and close the legal case."""
        s = self._c.state
        for plan in s.agreements.plans:  # their children may still run
            if plan.status in (PlanStatus.CANCELLED, PlanStatus.ACTIVE):
                self.tell(PlanChild(plan.workflow_id).cancel())
        if (case := s.legal.case) is not None:
            self.tell(CaseChild(case.workflow_id).close(f"loan closed as {s.outcome}"))

    # ------------------------------------------------------------------ internals
    async def _start(self, kind: ChildKind, workflow_type: str, arg: Any, child_id: str,
                     summary: str) -> None:
        """Start a child once and watch it; one that already exists is adopted."""
        try:
            handle = await workflow.start_child_workflow(
                workflow_type, arg, id=child_id, parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, static_summary=summary)
        except WorkflowAlreadyStartedError:  # started before a reset: the same child
            workflow.logger.info("child already exists; not started again",
                                 extra={"child": child_id})
            self._adopt(kind, child_id)
            return
        self._watchers.append(asyncio.create_task(self._watch(kind, child_id, handle)))

    async def _watch(self, kind: ChildKind, child_id: str,
                     handle: workflow.ChildWorkflowHandle[Any, Any]) -> None:
        try:
            await handle
        except ChildWorkflowError as err:
            self._on_failed(kind, child_id, failure_text(err))

    def _adopt(self, kind: ChildKind, child_id: str) -> None:
        self._watchers.append(asyncio.create_task(self._watch_adopted(kind, child_id)))

    async def _watch_adopted(self, kind: ChildKind, child_id: str) -> None:
        """Watch a child another run started (it reports its end to that run)."""
        ending = await workflow.execute_activity(
            AWAIT_WORKFLOW, child_id, result_type=WorkflowEnding,
            start_to_close_timeout=ADOPTED_WATCH, heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=f"watch {child_id}")
        if not ending.completed:
            self._on_failed(kind, child_id, ending.why)

    async def _send(self, signal: Signal) -> None:
        """Signal a child; one that has already finished is logged, not fatal."""
        handle = workflow.get_external_workflow_handle(signal.workflow_id)
        try:
            if signal.arg is None:
                await handle.signal(signal.name)
            else:
                await handle.signal(signal.name, signal.arg)
        except FailureError as err:
            workflow.logger.warning("child not signalled", extra={
                "child": signal.workflow_id, "signal": signal.name, "error": str(err)})

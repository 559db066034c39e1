"""RepaymentPlanWorkflow: one instalment plan, as a child of the loan's workflow.

It owns the schedule: it matches forwarded payments to instalments (oldest first), asks
the parent to remind the borrower before each due date (the parent contacts through the
compliance engine), marks an instalment late after its date plus grace, and breaks the
plan when more instalments are late than the policy tolerates. When the last instalment's
grace has passed with instalments still unpaid, the plan is judged at once - broken or
lapsed, as the policy says - so a plan never waits forever with nothing left to fall due.
It reports every change to the parent and never contacts anyone itself.

While the parent says collection is frozen (hardship hold, breathing space, dispute,
bankruptcy) nothing is reminded or judged late; when the freeze ends every unpaid
instalment moves later by the frozen days, so the borrower gets that time back.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.agreements import schedule
    from duecourse.domain.agreements.terms import (
        Instalment,
        PlanInput,
        PlanPayment,
        PlanProgress,
        PlanStatus,
        RepaymentPlan,
    )
    from duecourse.domain.calendar import pin_zone


@workflow.defn(name="RepaymentPlan")
class RepaymentPlanWorkflow:
    @workflow.init
    def __init__(self, inp: PlanInput) -> None:
        self._plan: RepaymentPlan = inp.plan.model_copy(deep=True)
        self._payments: list[PlanPayment] = []
        self._cancelled = False
        self._reminded: set[int] = set()
        self._version = 0
        self._frozen_since: datetime | None = workflow.now() if inp.frozen else None
        self._days_owed = 0  # frozen days not yet added to the schedule
        self._tz = (pin_zone(inp.timezone, inp.zone_rules) if inp.zone_rules
                    else inp.timezone)  # the loan's snapshot of the zone's rules

    @workflow.run
    async def run(self, inp: PlanInput) -> RepaymentPlan:
        plan = self._plan
        while plan.status is PlanStatus.ACTIVE:
            if self._payments:  # first: the last payment and a cancel may come together
                await self._allocate(inp)
                continue
            if self._cancelled:
                plan.status = PlanStatus.CANCELLED
                await self._notify(inp, "cancelled")
                break
            if self._frozen_since is not None:
                seen = self._version
                await workflow.wait_condition(lambda seen=seen: self._version != seen)
                continue
            if self._days_owed:
                self._reschedule()
                await self._notify(inp, "rescheduled")
                continue
            now = workflow.now()
            event = self._next_event(inp)
            if event is None:  # the schedule is over and instalments are still unpaid
                plan.status = schedule.end_status(inp.unpaid_at_end)
                await self._notify(inp, "broken" if plan.status is PlanStatus.BROKEN
                                   else "lapsed")
                continue
            at, kind, instalment = event
            if at > now:
                seen = self._version
                with contextlib.suppress(TimeoutError):  # woken by a timer or a signal
                    await workflow.wait_condition(lambda seen=seen: self._version != seen,
                                                  timeout=at - now,
                                                  timeout_summary=f"{kind} #{instalment.number}")
                continue
            if kind == "reminder":
                self._reminded.add(instalment.number)
                await self._notify(inp, "reminder", instalment.number)
            else:
                broken = schedule.mark_late(plan, instalment, inp.tolerated_late)
                await self._notify(inp, "broken" if broken else "late", instalment.number)
        return plan

    def _next_event(self, inp: PlanInput) -> tuple[datetime, str, Instalment] | None:
        """The next reminder or lateness check, for the earliest instalment still due."""
        return schedule.next_event(self._plan, self._reminded, inp.grace_days,
                                   inp.reminder_days_before, self._tz)

    def _reschedule(self) -> None:
        """Move every unpaid instalment later by the frozen days owed; remind them again."""
        days, self._days_owed = self._days_owed, 0
        schedule.reschedule(self._plan, days, self._reminded)

    async def _allocate(self, inp: PlanInput) -> None:
        """Apply queued payments to the oldest unpaid instalments."""
        plan = self._plan
        payments, self._payments = self._payments, []
        for payment in payments:
            schedule.allocate(plan, payment.amount)
        if schedule.completes(plan):
            await self._notify(inp, "completed")
        else:
            await self._notify(inp, "paid")

    async def _notify(self, inp: PlanInput, event: str, instalment: int | None = None) -> None:
        self._plan.version += 1
        parent = workflow.get_external_workflow_handle(inp.parent_workflow_id)
        try:
            await parent.signal("plan_progress", PlanProgress(
                plan=self._plan, event=event, instalment=instalment))  # type: ignore[arg-type]
        except FailureError as err:  # the loan closed meanwhile: nothing left to tell
            workflow.logger.warning("parent not signalled", extra={"error": str(err)})

    @workflow.signal
    def payment(self, payment: PlanPayment) -> None:
        self._payments.append(payment)
        self._version += 1

    @workflow.signal
    def freeze(self, frozen: bool) -> None:
        """From the parent: collection frozen or resumed. The frozen time is given back in
        whole days, rounded, and at least one day."""
        now = workflow.now()
        if frozen and self._frozen_since is None:
            self._frozen_since = now
        elif not frozen and self._frozen_since is not None:
            self._days_owed += schedule.frozen_days(self._frozen_since, now)
            self._frozen_since = None
        self._version += 1

    @workflow.signal
    def cancel(self) -> None:
        self._cancelled = True
        self._version += 1

    @workflow.query
    def plan(self) -> RepaymentPlan:
        return self._plan

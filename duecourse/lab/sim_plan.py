"""A repayment plan's child workflow in virtual time, on the workflow's own schedule code.

`PlanRun` does what `RepaymentPlanWorkflow` does - reminders before each due date,
lateness after the grace days, breaking or lapsing as the policy says, oldest-first
allocation of forwarded payments, frozen days given back - through the same functions
(`duecourse.domain.agreements.schedule`). Its timers are entries in the loan's event heap;
its reports reach the loan through `deals.plan_progress`, as the `plan_progress` signal
handler applies them, at the instant the child sends them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from duecourse.domain.agreements import deals, schedule
from duecourse.domain.agreements.terms import PlanProgress, PlanStatus, RepaymentPlan
from duecourse.domain.calendar import pin_zone

if TYPE_CHECKING:
    from duecourse.lab.sim_loan import LoanRun


class PlanRun:
    """One plan's child: started by the loan when the plan is agreed, told of payments,
    freezes and the loan's end."""

    def __init__(self, run: LoanRun, agreed: RepaymentPlan, frozen: bool) -> None:
        c = run.c
        self.run = run
        self.plan = agreed.model_copy(deep=True)
        self.rules = deals.plan_rules(c)
        zone_rules = c.state.rules.zone_rules if c.state.rules else None
        tz = c.loan.borrower.timezone
        self._tz = pin_zone(tz, zone_rules) if zone_rules else tz
        self._reminded: set[int] = set()
        self._frozen_since: datetime | None = run.now if frozen else None
        self._days_owed = 0
        self._token = 0  # the running timer's; a newer one (or none) makes it stale
        self._stepping = False
        self._step()

    @property
    def active(self) -> bool:
        return self.plan.status is PlanStatus.ACTIVE

    # ------------------------------------------------------------ the child's signals
    def payment(self, amount: Decimal) -> None:
        """`payment`: applied to the oldest unpaid instalments."""
        if not self.active:
            return
        schedule.allocate(self.plan, amount)
        self._notify("completed" if schedule.completes(self.plan) else "paid")
        self._step()

    def freeze(self, frozen: bool) -> None:
        """`freeze`: collection frozen or resumed; the frozen days are given back."""
        now = self.run.now
        if frozen and self._frozen_since is None:
            self._frozen_since = now
        elif not frozen and self._frozen_since is not None:
            self._days_owed += schedule.frozen_days(self._frozen_since, now)
            self._frozen_since = None
        self._step()

    def cancel(self) -> None:
        """`cancel`: the loan closed; the child stops (the loan ignores its report)."""
        if self.active:
            self.plan.status = PlanStatus.CANCELLED
        self._token += 1

    # ------------------------------------------------------------ the child's loop
    def _step(self) -> None:
        """`RepaymentPlanWorkflow.run` until it waits (re-entered by a report's effects,
        the outer pass goes on)."""
        if self._stepping:
            return
        self._stepping = True
        try:
            self._loop()
        finally:
            self._stepping = False

    def _loop(self) -> None:
        plan, rules, run = self.plan, self.rules, self.run
        self._token += 1  # whatever timer ran is replaced by the one armed below
        while plan.status is PlanStatus.ACTIVE:
            if self._frozen_since is not None:
                return
            if self._days_owed:
                days, self._days_owed = self._days_owed, 0
                schedule.reschedule(plan, days, self._reminded)
                self._notify("rescheduled")
                continue
            event = schedule.next_event(plan, self._reminded, rules.grace_days,
                                        rules.reminder_days_before, self._tz)
            if event is None:  # the schedule is over and instalments are still unpaid
                plan.status = schedule.end_status(rules.unpaid_at_end)
                self._notify("broken" if plan.status is PlanStatus.BROKEN else "lapsed")
                continue
            at, kind, instalment = event
            if at > run.now:
                token = self._token
                run.at(at, lambda token=token: self._fired(token))
                return
            if kind == "reminder":
                self._reminded.add(instalment.number)
                self._notify("reminder", instalment.number)
            else:
                broken = schedule.mark_late(plan, instalment, rules.tolerated_late)
                self._notify("broken" if broken else "late", instalment.number)

    def _fired(self, token: int) -> None:
        if token == self._token and not self.run.c.state.is_closed:
            self._step()

    def _notify(self, event: str, instalment: int | None = None) -> None:
        """Report to the loan as the `plan_progress` signal does (a copy of the plan)."""
        self.plan.version += 1
        progress = PlanProgress(plan=self.plan.model_copy(deep=True), event=event,  # type: ignore[arg-type]
                                instalment=instalment)
        run = self.run
        run.apply(deals.plan_progress(run.c, progress, run.now))

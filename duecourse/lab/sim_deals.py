"""Plans and settlements in the simulation: the agent offers, the borrower keeps or breaks.

A reached borrower who asks for a plan gets one the agent builds inside the policy's
limits (`deals.plan_rules`: instalments, first date, interval, down payment, minimum) and
proposes through the workflow's own validator; each instalment is paid on its date with
the segment's plan adherence, and the first one missed ends the borrower's payments (the
plan's child then judges it late and broken, as the policy says). A settlement is offered
at the behaviour file's discount; one beyond the agent's limit waits for the simulated
supervisor, and an accepted one is paid by its date with the segment's rate.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal

from duecourse.domain.agreements import deals
from duecourse.domain.agreements.terms import (
    InstalmentSpec,
    PlanProposal,
    SettlementStatus,
)
from duecourse.domain.calendar import local_date, wall_clock
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.money import Money
from duecourse.lab import sim_acts
from duecourse.lab.behaviour import Behaviour
from duecourse.lab.sim_acts import AGENT
from duecourse.lab.sim_loan import LoanRun
from duecourse.lab.sim_supervisor import Supervisor

CENT = Decimal("0.01")
NOON = timedelta(hours=12)


def plan_proposal(c: Collection, b: Behaviour, today: date) -> PlanProposal:
    """Equal instalments of the balance (the last takes the rounding, the first at least
    the policy's down payment), as many and as far apart as asked and allowed."""
    rules, balance = deals.plan_rules(c), c.state.outstanding
    count = min(b.plan_instalments, rules.max_instalments)
    first = today + timedelta(days=min(b.plan_first_days, rules.max_days_to_first_payment))
    gap = min(b.plan_interval_days, rules.max_interval_days)
    down = (balance * rules.min_down_payment_ratio).quantize(CENT)
    each = (balance / count).quantize(CENT, ROUND_DOWN)
    head = max(each, down)
    rest = count - 1
    later = ((balance - head) / rest).quantize(CENT, ROUND_DOWN) if rest else Decimal(0)
    amounts = [head] + [later] * rest
    amounts[-1] += balance - sum(amounts, Decimal(0))
    return PlanProposal(actor=AGENT, note="simulated plan", instalments=[
        InstalmentSpec(due_date=first + timedelta(days=gap * n),
                       amount=Money(amount=amount, currency=c.loan.currency))
        for n, amount in enumerate(amounts)])


class Deals:
    """The agent's offers to one reached borrower, and what the borrower then pays."""

    def __init__(self, run: LoanRun, b: Behaviour, rng: random.Random, dpd_factor: float,
                 supervisor: Supervisor) -> None:
        self.run, self.b, self.rng = run, b, rng
        self.dpd_factor, self.supervisor = dpd_factor, supervisor
        self._payments = 0

    @property
    def segment(self) -> str:
        return str(self.run.c.state.segment)

    def _pay(self, amount: Decimal, kind: str) -> None:
        c = self.run.c
        if c.state.is_closed or amount <= 0:
            return
        self._payments += 1
        sim_acts.report_payment(self.run, amount,
                                f"SIM{kind}-{c.loan.loan_id}-{self._payments}")

    # ------------------------------------------------------------ plans
    def plan(self) -> bool:
        """The agent proposes a plan; False when the engine refuses it (busy, legal)."""
        run = self.run
        c = run.c
        agreed = sim_acts.propose_plan(run, plan_proposal(c, self.b, local_date(run.now, c.tz)))
        if agreed is None:
            return False
        self._instalment_due(agreed.plan_id, 1)
        return True

    def _instalment_due(self, plan_id: str, number: int) -> None:
        c = self.run.c
        plan = c.state.agreements.active_plan
        if plan is None or plan.plan_id != plan_id or number > len(plan.instalments):
            return
        due = plan.instalments[number - 1].due_date
        self.run.at(wall_clock(due, NOON, c.tz), lambda: self._instalment(plan_id, number))

    def _instalment(self, plan_id: str, number: int) -> None:
        """Instalment `number` falls due: paid with the segment's adherence, else the
        borrower stops paying the plan."""
        c = self.run.c
        plan = c.state.agreements.active_plan
        if c.state.is_closed or plan is None or plan.plan_id != plan_id:
            return
        if self.rng.random() >= self.b.plan_adherence[self.segment] * self.dpd_factor:
            return
        self._pay(min(plan.instalments[number - 1].remaining, c.state.outstanding), "PLAN")
        self._instalment_due(plan_id, number + 1)

    # ------------------------------------------------------------ settlements
    def settle(self) -> bool:
        """The agent offers the behaviour file's discount; False when refused."""
        run, b = self.run, self.b
        c = run.c
        amount = (c.state.outstanding * (1 - Decimal(str(b.settlement_discount)))).quantize(
            CENT, ROUND_DOWN)
        pay_by = local_date(run.now, c.tz) + timedelta(days=b.settlement_pay_days)
        pending = sim_acts.offer_settlement(run, amount, pay_by)
        if pending is None:
            return False
        if pending:
            self.supervisor.settlement_pending()
        if self.rng.random() < b.settlement_paid[self.segment] * self.dpd_factor:
            run.at(wall_clock(pay_by, NOON, c.tz), self._settlement_due)
        return True

    def _settlement_due(self) -> None:
        """The pay-by date: an accepted settlement is paid in full (one still waiting for
        the supervisor, or rejected, is not)."""
        s = self.run.c.state
        st = s.agreements.open_settlement
        if s.is_closed or st is None or st.status is not SettlementStatus.ACCEPTED:
            return
        self._pay(st.amount - (s.total_paid - st.paid_before), "SET")

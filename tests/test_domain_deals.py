"""Plans, settlements and tasks in the pure domain: the edge cases a review found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from duecourse.domain.agreements import deals
from duecourse.domain.agreements.terms import (
    InstalmentSpec,
    PlanProgress,
    PlanProposal,
    PlanStatus,
    Settlement,
    SettlementOffer,
)
from duecourse.domain.calendar import local_date
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import PromiseRequest
from duecourse.domain.case.state import Stage
from duecourse.domain.compliance import HoldKind
from duecourse.domain.compliance.requests import HoldRequest
from duecourse.domain.contact import protections
from duecourse.domain.money import Money
from duecourse.domain.planner import ActionKind, plan
from duecourse.domain.work import completion
from duecourse.domain.work.queue import TaskCompletion, TaskKind
from duecourse.policies import load_policy
from tests.factories import AGENT, SUPERVISOR, make_loan

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
POLICY = load_policy("standard").model_copy(update={"segments": {}})


def collection(**kwargs: object) -> Collection:
    loan = make_loan(NOW, dpd=10, outstanding="900.00", **kwargs)  # type: ignore[arg-type]
    c, _ = Collection.begin(loan, POLICY, NOW, case_id="case-1")
    c.state.rescore = False
    return c


def three_instalments(c: Collection) -> PlanProposal:
    first = local_date(NOW, c.loan.borrower.timezone) + timedelta(days=5)
    return PlanProposal(actor=AGENT, instalments=[
        InstalmentSpec(due_date=first + timedelta(days=30 * i), amount=Money.of("300", "CNY"))
        for i in range(3)])


def settle_for(c: Collection, amount: str) -> Settlement:
    """Offer a settlement of `amount` CNY, payable a week from now (local)."""
    pay_by = local_date(NOW, c.loan.borrower.timezone) + timedelta(days=7)
    settlement, _ = deals.offer_settlement(c, SettlementOffer(
        amount=Money.of(amount, "CNY"), pay_by=pay_by, actor=AGENT), NOW)
    return settlement


def test_reminders_of_a_broken_plan_are_dropped() -> None:
    c = collection()
    plan_, _ = deals.accept_plan(c, three_instalments(c), NOW, "plan-wf")
    deals.plan_progress(c, PlanProgress(plan=plan_, event="reminder", instalment=3), NOW)
    assert c.state.agreements.plan_reminders == [3]
    broken = plan_.model_copy(deep=True, update={"status": PlanStatus.BROKEN, "late": 2})
    deals.plan_progress(c, PlanProgress(plan=broken, event="broken", instalment=2), NOW)
    assert c.state.agreements.plan_reminders == []
    one = PlanProposal(actor=AGENT, instalments=[InstalmentSpec(
        due_date=local_date(NOW, c.loan.borrower.timezone) + timedelta(days=3),
        amount=Money.of("900", "CNY"))])
    deals.accept_plan(c, one, NOW, "plan-wf-2")
    action = plan(c, NOW)
    assert action is None or action.kind is not ActionKind.PLAN_REMINDER


def test_no_promise_beside_a_plan_and_no_plan_in_legal() -> None:
    c = collection()
    deals.accept_plan(c, three_instalments(c), NOW, "plan-wf")
    day = local_date(NOW, c.loan.borrower.timezone) + timedelta(days=2)
    problem = c.promise_problem(PromiseRequest(amount=Money.of("100", "CNY"), due_date=day,
                                               actor=AGENT), NOW)
    assert problem is not None and "plan PLAN1 is active" in problem
    legal = collection()
    legal.end_reminder(NOW)
    legal.end_negotiation(NOW)
    assert legal.state.stage is Stage.LEGAL
    assert "legal stage" in (deals.plan_problem(legal, three_instalments(legal), NOW) or "")
    visits = len(legal.state.visits)
    legal.escalate(NOW, "again")
    assert len(legal.state.visits) == visits, "escalating from legal opens no second stage"


def test_a_settlement_waiting_for_a_supervisor_lapses_after_its_date() -> None:
    c = collection()
    settlement = settle_for(c, "450")
    assert settlement.status == "PENDING_APPROVAL"
    approval = next(t for t in c.state.work.tasks if t.kind is TaskKind.APPROVE_SETTLEMENT)
    approval.escalated_at = NOW + timedelta(days=2)  # its SLA already escalated, unanswered
    action = plan(c, NOW + timedelta(days=3))
    assert action is not None and action.kind is ActionKind.CHECK_SETTLEMENT
    assert action.due_at == settlement.check_at
    deals.check_settlement(c, settlement.check_at)
    assert settlement.status == "LAPSED" and c.state.agreements.open_settlement is None
    assert all(t.status.value == "done" for t in c.state.work.tasks
               if t.kind is TaskKind.APPROVE_SETTLEMENT)


def test_rejecting_a_hardship_review_after_the_hold_ended_is_harmless() -> None:
    c = collection()
    protections.change_hold(c, HoldRequest(action="start", kind=HoldKind.HARDSHIP, days=5,
                                           actor=AGENT), NOW)
    review = next(t for t in c.state.work.tasks if t.kind is TaskKind.REVIEW_HARDSHIP)
    later = NOW + timedelta(days=6)
    done = TaskCompletion(task_id=review.task_id, outcome="rejected", actor=SUPERVISOR)
    assert completion.task_problem(c, done, later) is None
    completion.complete_task(c, done, later)
    assert review.status.value == "done" and review.outcome == "rejected"


def test_closing_withdraws_open_agreements() -> None:
    c = collection()
    settlement = settle_for(c, "800")
    assert settlement.status == "ACCEPTED"
    c.write_off(NOW)
    assert settlement.status == "WITHDRAWN" and c.state.agreements.open_settlement is None

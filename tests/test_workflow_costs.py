"""What a loan costs in Temporal actions, read from its history on the test server: one
activity at hand-over, no ledger write after a sent contact, no timer re-armed by a
change that leaves the next due time as it was, and continue-as-new while a plan runs."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.api.history.v1 import HistoryEvent

from duecourse.domain.agreements.terms import Assignment, InstalmentSpec, PlanProposal
from duecourse.domain.calendar import local_date
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.policies import load_policy
from duecourse.store import tables as t
from duecourse.temporal.contracts import CollectionInput
from tests.conftest import Harness, advance_to_local
from tests.factories import AGENT, SUPERVISOR, make_loan, payment

STANDARD = load_policy("standard").model_copy(update={"segments": {}})  # timing as written


async def history(h: Harness, loan: LoanIntake, run_id: str | None = None,
                  ) -> list[HistoryEvent]:
    await h.settle(loan.loan_id)
    handle = h.env.client.get_workflow_handle(loan.workflow_id, run_id=run_id)
    return [e async for e in handle.fetch_history_events()]


def activities(events: list[HistoryEvent]) -> list[str]:
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in events
            if e.HasField("activity_task_scheduled_event_attributes")]


def count(events: list[HistoryEvent], attributes: str) -> int:
    return sum(1 for e in events if e.HasField(attributes))


async def start_by_day(h: Harness, **kwargs: Any) -> LoanIntake:
    """A loan handed over at 10:00 in the borrower's zone: its first reminder may go at
    once."""
    loan = make_loan(await h.env.get_current_time(), **kwargs)
    await advance_to_local(h, ZoneInfo(loan.borrower.timezone), time(10, 0))
    await h.client.start(loan, STANDARD)
    await h.settle(loan.loan_id)
    return loan


def before_first(events: list[HistoryEvent], name: str) -> list[str]:
    """The activities scheduled before the first one called `name`."""
    names = activities(events)
    return names[:names.index(name)] if name in names else names


async def test_the_hand_over_is_one_activity(harness: Harness) -> None:
    """Opening the case, its rules, its first stage and its first score: one activity
    (it was four: open_loan, record_entries, score_loan, record_entries)."""
    h = harness
    loan = await start_by_day(h, dpd=1)
    events = await history(h, loan)
    assert before_first(events, "send_message") == ["open_loan"]
    status = await h.client.status(loan.loan_id)
    assert status.segment is not None, "the hand-over scores the loan"
    kinds = [r["kind"] for r in await h.rows(t.audit_events, loan_id=loan.loan_id)]
    assert kinds.count("stage_changed") == 1 and "segment_changed" in kinds


async def test_a_sent_contact_costs_no_ledger_write_of_its_own(harness: Harness) -> None:
    """send_message records the decision and the attempt itself: no record_entries after
    it (its decision row is there all the same)."""
    h = harness
    loan = await start_by_day(h, dpd=1)
    events = await history(h, loan)
    sent = (await h.client.status(loan.loan_id)).contacts_sent
    assert sent >= 1
    assert activities(events) == ["open_loan"] + ["send_message"] * sent
    decisions = await h.rows(t.compliance_decisions, loan_id=loan.loan_id)
    assert sum(1 for d in decisions if d["verdict"] == "allowed") == sent
    assert len(await h.rows(t.contact_attempts, loan_id=loan.loan_id, status="sent")) == sent


async def test_a_change_that_keeps_the_due_time_keeps_the_timer(harness: Harness) -> None:
    """An update that leaves the next action where it was neither cancels nor re-arms the
    timer waiting for it (every wait used to start a timer of its own)."""
    h = harness
    loan = await start_by_day(h, dpd=1)
    before = await history(h, loan)
    due = (await h.client.status(loan.loan_id)).next_action
    for agent in ("agent-1", "agent-2", "agent-3"):
        await h.client.assign_agent(loan.loan_id, Assignment(agent_id=agent,
                                                             actor=SUPERVISOR))
    after = await history(h, loan)
    assert due is not None and (await h.client.status(loan.loan_id)).next_action == due
    started = "timer_started_event_attributes"
    assert count(after, started) == count(before, started) == 1
    assert count(after, "timer_canceled_event_attributes") == 0
    await h.client.report_payment(loan.loan_id, payment("1000.00", "ALL"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"


def plan_of(first: date, amounts: list[str], currency: str) -> PlanProposal:
    return PlanProposal(actor=AGENT, note="agreed on the phone", instalments=[
        InstalmentSpec(due_date=first + timedelta(days=30 * i),
                       amount=Money.of(a, currency)) for i, a in enumerate(amounts)])


async def test_a_loan_continues_as_new_while_its_plan_runs(harness: Harness) -> None:
    """The plan child addresses the loan by workflow id, so the loan need not keep one run
    (and one growing history) for the plan's whole life: the next run adopts it, and the
    plan still completes and closes the loan."""
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=10, outstanding="900.00")
    h.client.started.append(loan.loan_id)
    first_run = await h.env.client.start_workflow(
        "LoanCollection", CollectionInput(loan=loan, policy=STANDARD, history_limit=100),
        id=loan.workflow_id, task_queue=h.task_queue)
    await h.settle(loan.loan_id)
    today = local_date(await h.env.get_current_time(), loan.borrower.timezone)
    accepted = await h.client.propose_plan(loan.loan_id, plan_of(
        today + timedelta(days=5), ["300.00"] * 3, loan.currency))
    runs = {first_run.result_run_id}
    for instalment in accepted.instalments:
        await h.env.sleep(timedelta(days=(instalment.due_date - today).days - 1))
        today = instalment.due_date - timedelta(days=1)
        status = await h.client.status(loan.loan_id)
        assert status.plan is not None and status.plan.status == "ACTIVE"
        runs.add((await h.client.handle(loan.loan_id).describe()).run_id)
        await h.client.report_payment(loan.loan_id, payment(
            str(instalment.amount), f"INST-{instalment.number}"))
    assert len(runs) > 1, "the loan should have continued as new while its plan ran"
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"
    plan = h.env.client.get_workflow_handle(accepted.workflow_id)
    assert (await plan.describe()).status.name == "COMPLETED"
    agreements = await h.rows(t.agreements, loan_id=loan.loan_id)
    assert [a["status"] for a in agreements] == ["COMPLETED"]
    assert len(await h.rows(t.payments, loan_id=loan.loan_id)) == 3

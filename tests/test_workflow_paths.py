"""Every path of the collection workflow, on the real time-skipping test server.

Months of a loan's life run in well under a second each; the ledger is a real SQLite
database, so each test checks what was recorded as well as what the workflow reports.
"""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from duecourse import search_attributes as sa
from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.calendar import local_date, wall_clock
from duecourse.domain.case.commands import (
    CancelRequest,
    ContactOutcomeReport,
    ContactResult,
    LegalDecision,
    PromiseRequest,
)
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel
from duecourse.policies import load_policy
from duecourse.store import tables as t
from duecourse.temporal.client import ActionRejected
from tests.conftest import Harness, advance_to_local
from tests.factories import AGENT, SUPERVISOR, make_loan, payment

STANDARD = load_policy("standard").model_copy(update={"segments": {}})  # timing as written


async def start(h: Harness, **kwargs: object) -> LoanIntake:
    loan = make_loan(await h.env.get_current_time(), **kwargs)  # type: ignore[arg-type]
    outcome = await h.client.start(loan, STANDARD)
    assert outcome.started
    return loan


async def today(h: Harness, loan: LoanIntake):
    return local_date(await h.env.get_current_time(), loan.borrower.timezone)


async def engage(h: Harness, loan: LoanIntake) -> None:
    """An agent reaches the borrower: the loan moves to negotiation at once."""
    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT, note="answered"))


async def promise(h: Harness, loan: LoanIntake, amount: str, in_days: int):
    due = await today(h, loan) + timedelta(days=in_days)
    return await h.client.promise_to_pay(loan.loan_id, PromiseRequest(
        amount=Money.of(amount, loan.currency), due_date=due, actor=AGENT))


async def contacts(h: Harness, loan: LoanIntake) -> list[dict]:
    return await h.rows(t.contact_attempts, loan_id=loan.loan_id)


async def audit_kinds(h: Harness, loan: LoanIntake) -> list[str]:
    return [r["kind"] for r in await h.rows(t.audit_events, loan_id=loan.loan_id)]


async def search_attributes(h: Harness, loan: LoanIntake) -> dict[str, object]:
    described = await h.client.handle(loan.loan_id).describe()
    return {p.key.name: p.value for p in described.typed_search_attributes}


# ---------------------------------------------------------------- reminder and payments
async def test_full_payment_in_reminder_ends_paid_and_stops_contact(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=1)
    await h.env.sleep(timedelta(days=2))
    status = await h.client.status(loan.loan_id)
    assert status.stage == "REMINDER" and status.contacts_sent >= 1
    attrs = await search_attributes(h, loan)
    assert attrs[sa.COLLECTION_STAGE.name] == "REMINDER"
    assert attrs[sa.JURISDICTION.name] == "CN"
    assert attrs[sa.OUTSTANDING_AMOUNT.name] == 1000.0
    assert attrs[sa.DAYS_PAST_DUE.name] >= 1

    paid = payment("1000.00", "PAY-FULL")
    await h.client.report_payment(loan.loan_id, paid)
    result = await h.client.result(loan.loan_id)
    assert result.outcome == "PAID"
    assert result.outstanding.amount == 0 and result.total_paid.amount == Decimal("1000.00")

    sent = await contacts(h, loan)
    assert len(sent) == (await h.client.status(loan.loan_id)).contacts_sent
    closed_at = result.closed_at
    assert all(row["scheduled_for"] <= closed_at for row in sent)
    attrs = await search_attributes(h, loan)
    assert attrs[sa.COLLECTION_OUTCOME.name] == "PAID"
    assert attrs[sa.OUTSTANDING_AMOUNT.name] == 0.0
    transitions = await h.rows(t.stage_transitions, loan_id=loan.loan_id)
    assert [(r["to_stage"], r["outcome"]) for r in transitions] == [("REMINDER", None),
                                                                    (None, "PAID")]
    assert transitions[-1]["actor_kind"] == "platform"
    case = (await h.rows(t.collection_cases, loan_id=loan.loan_id))[0]
    assert case["outcome"] == "PAID" and case["closed_at"] == closed_at


async def test_partial_then_full_payment(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=3)
    await h.client.report_payment(loan.loan_id, payment("400.00", "P-1"))
    status = await h.client.status(loan.loan_id)
    assert status.outstanding == Money.of("600.00", "CNY")
    assert status.total_paid == Money.of("400.00", "CNY")
    assert status.stage == "REMINDER" and status.outcome is None
    assert (await search_attributes(h, loan))[sa.OUTSTANDING_AMOUNT.name] == 600.0

    await h.env.sleep(timedelta(days=1))
    await h.client.report_payment(loan.loan_id, payment("600.00", "P-2"))
    result = await h.client.result(loan.loan_id)
    assert result.outcome == "PAID"
    rows = await h.rows(t.payments, loan_id=loan.loan_id)
    assert [(r["reference"], r["applied"], r["outstanding_after"]) for r in rows] == [
        ("P-1", Decimal("400.00"), Decimal("600.00")),
        ("P-2", Decimal("600.00"), Decimal("0.00"))]


async def test_duplicate_payment_reference_counts_once(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=2)
    await h.client.report_payment(loan.loan_id, payment("400.00", "DUP-1"))
    await h.client.report_payment(loan.loan_id, payment("400.00", "DUP-1"))
    status = await h.client.status(loan.loan_id)
    assert status.outstanding.amount == Decimal("600.00")
    assert status.total_paid.amount == Decimal("400.00")

    await h.client.report_payment(loan.loan_id, payment("700.00", "DUP-2"))  # overpays
    result = await h.client.result(loan.loan_id)
    assert result.outcome == "PAID" and result.total_paid.amount == Decimal("1100.00")
    rows = await h.rows(t.payments, loan_id=loan.loan_id)
    assert [r["reference"] for r in rows] == ["DUP-1", "DUP-2"]
    assert rows[1]["overpaid"] == Decimal("100.00")
    assert "payment_duplicate_ignored" in await audit_kinds(h, loan)


async def test_payment_in_wrong_currency_is_recorded_not_applied(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=2)
    await h.client.report_payment(loan.loan_id, payment("1000.00", "USD-1", currency="USD"))
    status = await h.client.status(loan.loan_id)
    assert status.outstanding.amount == Decimal("1000.00")
    await h.client.cancel(loan.loan_id, CancelRequest(reason="test over"))
    await h.client.result(loan.loan_id)
    assert "payment_rejected" in await audit_kinds(h, loan)
    assert await h.rows(t.payments, loan_id=loan.loan_id) == []


async def test_no_response_by_end_of_reminder_window_moves_to_negotiation(
        harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=1)
    await h.env.sleep(timedelta(days=12))
    status = await h.client.status(loan.loan_id)
    assert status.stage == "REMINDER"
    assert status.contacts_sent >= 3  # notice, reminder, courtesy call, next steps
    await h.env.sleep(timedelta(days=4))
    status = await h.client.status(loan.loan_id)
    assert status.stage == "NEGOTIATION"
    entered = status.stage_history[-1]
    assert entered.reason == "no response by the end of the reminder window"
    window_end = wall_clock(loan.due_date, STANDARD.reminder.window, loan.borrower.timezone)
    assert abs(entered.entered_at - window_end) < timedelta(seconds=1)
    assert (await search_attributes(h, loan))[sa.COLLECTION_STAGE.name] == "NEGOTIATION"
    templates = [r["template"] for r in await contacts(h, loan)]
    assert "overdue_reminder" in templates and "next_steps" in templates


async def test_borrower_contact_moves_to_negotiation_at_once(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, ZoneInfo("Asia/Shanghai"), time(10, 0))  # the call is lawful:
    loan = await start(h, dpd=2)  # at 03:00 it is also a violation to review (a task)
    await engage(h, loan)
    status = await h.client.status(loan.loan_id)
    assert status.stage == "NEGOTIATION"
    assert "reached" in status.stage_history[-1].reason
    assert status.stage_history[-1].actor == AGENT
    await h.env.sleep(timedelta(days=2))
    negotiation = [r for r in await contacts(h, loan) if r["stage"] == "NEGOTIATION"]
    assert [r["template"] for r in negotiation][:1] == ["repayment_options"]
    calls = await h.tasks(loan_id=loan.loan_id)  # the agent call is a person's task
    assert [(t_["kind"], t_["subject"]) for t_ in calls] == [("call_borrower", "agent-call")]


# ---------------------------------------------------------------- promises
async def test_promise_kept_pauses_reminders_then_continues(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=2)
    await engage(h, loan)
    accepted = await promise(h, loan, "300.00", in_days=5)
    assert accepted.promise_id == "P1"
    before = len(await contacts(h, loan))
    await h.env.sleep(timedelta(days=4))
    status = await h.client.status(loan.loan_id)
    assert status.active_promise is not None
    assert status.next_action is not None and status.next_action.kind == "check_promise"
    assert len(await contacts(h, loan)) == before, "reminders must pause during a promise"

    await h.client.report_payment(loan.loan_id, payment("300.00", "PROM-1"))
    status = await h.client.status(loan.loan_id)
    assert status.active_promise is None and status.broken_promises == 0
    assert status.stage == "NEGOTIATION" and status.outstanding.amount == Decimal("700.00")
    await h.env.sleep(timedelta(days=9))
    assert len(await contacts(h, loan)) > before, "contact resumes after a kept promise"

    rows = await h.rows(t.promises, loan_id=loan.loan_id)
    assert [(r["promise_id"], r["status"]) for r in rows] == [("P1", "ACTIVE"), ("P1", "KEPT")]
    assert rows[0]["actor_id"] == AGENT.id
    await h.client.report_payment(loan.loan_id, payment("700.00", "PROM-2"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"


async def test_promise_kept_in_full_ends_paid(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=2)
    await promise(h, loan, "1000.00", in_days=3)  # agreed in reminder: moves to negotiation
    assert (await h.client.status(loan.loan_id)).stage == "NEGOTIATION"
    await h.env.sleep(timedelta(days=2))
    await h.client.report_payment(loan.loan_id, payment("1000.00", "FULL"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"
    statuses = [r["status"] for r in await h.rows(t.promises, loan_id=loan.loan_id)]
    assert statuses == ["ACTIVE", "KEPT"]


async def test_broken_promises_escalate_to_legal(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=2)
    await engage(h, loan)
    await promise(h, loan, "500.00", in_days=3)
    await h.env.sleep(timedelta(days=8))  # date + 3 days' grace has passed, unpaid
    status = await h.client.status(loan.loan_id)
    assert status.broken_promises == 1 and status.stage == "NEGOTIATION"

    with pytest.raises(ActionRejected, match="more than 7 days ahead"):
        await promise(h, loan, "500.00", in_days=10)  # shorter deadline after a broken one
    await promise(h, loan, "500.00", in_days=5)
    await h.env.sleep(timedelta(days=10))
    status = await h.client.status(loan.loan_id)
    assert status.stage == "LEGAL"
    assert status.stage_history[-1].reason == "2 broken promises to pay"
    rows = await h.rows(t.promises, loan_id=loan.loan_id)
    assert [(r["promise_id"], r["status"]) for r in rows] == [
        ("P1", "ACTIVE"), ("P1", "BROKEN"), ("P2", "ACTIVE"), ("P2", "BROKEN")]
    assert (await search_attributes(h, loan))[sa.COLLECTION_STAGE.name] == "LEGAL"


async def test_invalid_promises_are_rejected_without_changing_the_loan(
        harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=2)
    await engage(h, loan)
    history_before = await h.settle(loan.loan_id)
    before = (await h.client.status(loan.loan_id)).model_dump(exclude={"as_of"})
    day = await today(h, loan)
    bad = [
        (Money.of("1500.00", "CNY"), day + timedelta(days=2), "exceeds the outstanding"),
        (Money.of("0", "CNY"), day + timedelta(days=2), "greater than zero"),
        (Money.of("100.00", "USD"), day + timedelta(days=2), "must be in CNY"),
        (Money.of("100.00", "CNY"), day - timedelta(days=1), "in the past"),
        (Money.of("100.00", "CNY"), day + timedelta(days=15), "more than 14 days ahead"),
    ]
    for amount, due, reason in bad:
        with pytest.raises(ActionRejected, match=reason):
            await h.client.promise_to_pay(loan.loan_id, PromiseRequest(
                amount=amount, due_date=due, actor=AGENT))
    await h.assert_no_trace(loan.loan_id, history_before, before)
    assert await h.rows(t.promises, loan_id=loan.loan_id) == []


# ---------------------------------------------------------------- legal
async def reach_approval(h: Harness, loan: LoanIntake) -> None:
    """Negotiation without agreement -> legal -> demand letter -> cure period ends."""
    await engage(h, loan)
    await h.env.sleep(timedelta(days=31))
    status = await h.client.status(loan.loan_id)
    assert status.stage == "LEGAL" and status.legal_phase == "CURE_PERIOD"
    assert status.stage_history[-1].reason == "no agreement within the negotiation window"
    letters = [r for r in await contacts(h, loan) if r["template"] == "demand_letter"]
    assert len(letters) == 1 and letters[0]["channel"] == "letter"
    assert str(STANDARD.legal.cure_period.days) in letters[0]["body"]
    await h.env.sleep(timedelta(days=15))
    status = await h.client.status(loan.loan_id)
    assert status.legal_phase == "AWAITING_APPROVAL"


async def test_legal_referral_approved_by_supervisor(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=5)
    await engage(h, loan)
    await h.env.sleep(timedelta(days=31))
    with pytest.raises(ActionRejected, match="no legal referral is awaiting approval"):
        await h.client.decide_legal_referral(loan.loan_id, LegalDecision(
            approve=True, actor=SUPERVISOR, reason="too early"))
    await h.env.sleep(timedelta(days=15))
    alerts = [a for a in await h.rows(t.ops_alerts, loan_id=loan.loan_id)
              if "] Legal " in a["subject"]]
    assert len(alerts) == 1 and "awaiting supervisor approval" in alerts[0]["subject"]
    approval = [x for x in await h.tasks(loan_id=loan.loan_id)
                if x["kind"] == "approve_legal"]
    assert len(approval) == 1 and approval[0]["assignee"] == "supervisors"

    with pytest.raises(ActionRejected, match="only a supervisor"):
        await h.client.decide_legal_referral(loan.loan_id, LegalDecision(
            approve=True, actor=AGENT, reason="agent tries"))
    decided = await h.client.decide_legal_referral(loan.loan_id, LegalDecision(
        approve=True, actor=SUPERVISOR, reason="no engagement after demand"))
    assert decided.approved and decided.legal_phase == "REFERRED"
    status = await h.client.status(loan.loan_id)
    assert status.stage == "LEGAL" and status.legal_phase == "REFERRED"
    approvals = [r for r in await h.rows(t.audit_events, loan_id=loan.loan_id)
                 if r["kind"] == "legal_referral_approved"]
    assert len(approvals) == 1 and approvals[0]["actor_id"] == SUPERVISOR.id

    await h.client.report_payment(loan.loan_id, payment("1000.00", "LEGAL-PAY"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"


async def test_legal_flow_with_promise_escalation_and_demand_content(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=5)
    await reach_approval(h, loan)
    kinds = await audit_kinds(h, loan)
    assert kinds.index("demand_sent") < kinds.index("legal_approval_requested")


async def test_approval_timeout_escalates_to_ops(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=5)
    await reach_approval(h, loan)
    await h.env.sleep(STANDARD.legal.approval_timeout + timedelta(hours=1))
    status = await h.client.status(loan.loan_id)
    assert status.approval_escalations == 1 and status.legal_phase == "AWAITING_APPROVAL"
    await h.env.sleep(STANDARD.legal.approval_timeout)
    assert (await h.client.status(loan.loan_id)).approval_escalations == 2
    alerts = [r["subject"] for r in await h.rows(t.ops_alerts, loan_id=loan.loan_id)
              if "] Legal " in r["subject"]]
    assert len(alerts) == 3 and "escalation 2" in alerts[-1]
    assert (await audit_kinds(h, loan)).count("legal_approval_overdue") == 2

    decided = await h.client.decide_legal_referral(loan.loan_id, LegalDecision(
        approve=False, actor=SUPERVISOR, reason="hardship claim pending"))
    assert not decided.approved and decided.stage == "NEGOTIATION"
    status = await h.client.status(loan.loan_id)
    assert status.stage == "NEGOTIATION" and status.legal_phase is None
    assert "hardship claim pending" in status.stage_history[-1].reason


# ---------------------------------------------------------------- endings
async def test_cancel_from_platform(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=4)
    await h.env.sleep(timedelta(days=1))
    platform = Actor(kind=ActorKind.PLATFORM, id="lender-core")
    await h.client.cancel(loan.loan_id, CancelRequest(reason="restructured in core banking",
                                                      actor=platform))
    result = await h.client.result(loan.loan_id)
    assert result.outcome == "CANCELLED" and result.reason == "restructured in core banking"
    closing = (await h.rows(t.stage_transitions, loan_id=loan.loan_id))[-1]
    assert closing["outcome"] == "CANCELLED" and closing["actor_id"] == "lender-core"
    assert (await search_attributes(h, loan))[sa.COLLECTION_OUTCOME.name] == "CANCELLED"


async def test_write_off_at_policy_dpd(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=170)
    result = await h.client.result(loan.loan_id)
    assert result.outcome == "WRITTEN_OFF"
    expected = wall_clock(loan.due_date + timedelta(days=STANDARD.write_off_dpd),
                          timedelta(0), loan.borrower.timezone)
    assert abs(result.closed_at - expected) < timedelta(seconds=1)
    status = await h.client.status(loan.loan_id)
    assert status.days_past_due == STANDARD.write_off_dpd
    closing = (await h.rows(t.stage_transitions, loan_id=loan.loan_id))[-1]
    assert closing["outcome"] == "WRITTEN_OFF" and closing["days_past_due"] == 180
    assert (await search_attributes(h, loan))[sa.COLLECTION_OUTCOME.name] == "WRITTEN_OFF"


async def test_duplicate_start_returns_the_running_workflow(harness: Harness) -> None:
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=3)
    first = await h.client.start(loan, STANDARD)
    second = await h.client.start(loan, STANDARD)
    assert first.started and not second.started
    assert second.run_id == first.run_id and second.workflow_id == f"collection-{loan.loan_id}"
    await h.client.cancel(loan.loan_id, CancelRequest(reason="test over"))
    await h.client.result(loan.loan_id)
    assert len(await h.rows(t.collection_cases, loan_id=loan.loan_id)) == 1


async def test_loan_not_overdue_is_refused(harness: Harness) -> None:
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=0)
    await h.client.start(loan, STANDARD)
    with pytest.raises(WorkflowFailureError) as failure:
        await h.client.result(loan.loan_id)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "LoanNotOverdue"
    assert await h.rows(t.loans, loan_id=loan.loan_id) == []

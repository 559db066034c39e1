"""The planner and the collection transitions, without Temporal: what happens when."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from duecourse.domain.calendar import wall_clock
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import CancelRequest, LegalDecision, PromiseRequest
from duecourse.domain.case.state import LegalPhase, Stage
from duecourse.domain.compliance import Verdict
from duecourse.domain.entries import EventRecorded, PaymentRecorded, StageChanged
from duecourse.domain.money import Money
from duecourse.domain.planner import ActionKind, plan, write_off_at
from duecourse.domain.policy import Channel
from duecourse.policies import load_policy
from tests.factories import AGENT, SUPERVISOR, make_loan, payment

STANDARD = load_policy("standard")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def opened(now: datetime, **kwargs: object) -> Collection:
    loan = make_loan(now, **kwargs)  # type: ignore[arg-type]
    collection, _ = Collection.begin(loan, STANDARD, now, case_id="case-1")
    collection.state.rescore = False  # these tests look at timing, not at scoring
    return collection


def test_late_night_first_reminder_is_deferred_to_08_00_local() -> None:
    now = datetime(2026, 11, 28, 23, 30, tzinfo=SHANGHAI).astimezone(UTC)
    c = opened(now, dpd=1)
    action = plan(c, now)
    assert action is not None and action.kind is ActionKind.CONTACT and action.step
    assert action.due_at == now  # due now; the engine decides whether it may go now
    decision = c.decide_contact(action.step.channel, "+8613800138000", now)
    assert decision.verdict is Verdict.DEFERRED and decision.code == "hours"
    assert decision.until is not None
    assert decision.until.astimezone(SHANGHAI) == datetime(2026, 11, 29, 8, tzinfo=SHANGHAI)
    c.record_decision(action.step.name, action.step.channel, "+8613800138000", decision)
    replanned = plan(c, now)
    assert replanned is not None and replanned.due_at == decision.until


def test_late_handover_sends_the_notices_late_and_skips_only_stale_nudges() -> None:
    now = datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI).astimezone(UTC)
    c = opened(now, dpd=9)  # notices, reminder-sms and courtesy-call all missed
    first = plan(c, now)
    assert first is not None and first.step is not None
    assert (first.step.name, first.due_at, first.superseded) == ("notice-sms", now, [])
    c.contact_made(first.step.channel, "+8613800138000", now)
    c.record_step("notice-sms", "sent", now)
    second = plan(c, now)
    assert second is not None and second.step is not None
    assert (second.step.name, second.superseded) == ("notice-email", []), \
        "a notice is sent late, never dropped"
    c.record_step("notice-email", "sent", now)
    third = plan(c, now)
    assert third is not None and third.step is not None
    assert (third.step.name, third.superseded) == ("courtesy-call", ["reminder-sms"]), \
        "a stale nudge gives way to the latest step once the borrower has been told"


def test_a_nudge_that_would_be_the_first_contact_is_never_superseded() -> None:
    now = datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI).astimezone(UTC)
    policy = STANDARD.model_copy(update={"reminder": STANDARD.reminder.model_copy(update={
        "steps": [s.model_copy(update={"supersedable": True})
                  for s in STANDARD.reminder.steps]})})
    c, _ = Collection.begin(make_loan(now, dpd=9), policy, now, case_id="case-1")
    c.state.rescore = False
    action = plan(c, now)
    assert action is not None and action.step is not None
    assert (action.step.name, action.superseded) == ("notice-sms", [])
    c.contact_made(Channel.SMS, "+8613800138000", now)
    c.record_step("notice-sms", "sent", now)
    action = plan(c, now)
    assert action is not None and action.step is not None
    assert action.step.name == "courtesy-call"
    assert action.superseded == ["notice-email", "reminder-sms"]


def test_next_step_follows_the_due_date_on_the_borrowers_wall_clock() -> None:
    now = datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI).astimezone(UTC)
    c = opened(now, dpd=2)
    c.record_step("notice-sms", "sent", now)
    c.record_step("notice-email", "sent", now)
    action = plan(c, now)
    assert action is not None and action.step is not None and action.step.name == "reminder-sms"
    expected = wall_clock(c.loan.due_date, timedelta(days=4, hours=18), "Asia/Shanghai")
    assert action.due_at == expected


def test_reminder_stage_gives_minimum_notice_after_the_first_contact() -> None:
    now = datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI).astimezone(UTC)
    c = opened(now, dpd=40)  # reminder window (DPD 15) long gone
    c.contact_made(STANDARD.reminder.steps[0].channel, "+8613800138000", now)
    for step in STANDARD.reminder.steps:
        c.record_step(step.name, "sent", now)
    action = plan(c, now)
    assert action is not None and action.kind is ActionKind.END_REMINDER
    assert action.due_at == now + STANDARD.reminder.minimum_notice


def test_an_active_promise_pauses_contact() -> None:
    now = datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI).astimezone(UTC)
    c = opened(now, dpd=3)
    promise, entries = c.make_promise(PromiseRequest(
        amount=Money.of("200.00", "CNY"), due_date=now.astimezone(SHANGHAI).date() +
        timedelta(days=4), actor=AGENT), now)
    assert c.state.stage is Stage.NEGOTIATION
    assert isinstance(entries[0], StageChanged)
    action = plan(c, now)
    assert action is not None and action.kind is ActionKind.CHECK_PROMISE
    assert action.due_at == promise.check_at
    # checked at the start of the borrower's day after date + 3 days' grace
    assert promise.check_at.astimezone(SHANGHAI).time() == time(0)
    assert (promise.check_at.astimezone(SHANGHAI).date() - promise.due_date).days == 4


def test_promise_rules() -> None:
    now = datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI).astimezone(UTC)
    c = opened(now, dpd=3)
    today = now.astimezone(SHANGHAI).date()

    def problem(amount: str, days: int, currency: str = "CNY") -> str | None:
        return c.promise_problem(PromiseRequest(amount=Money.of(amount, currency),
                                                due_date=today + timedelta(days=days),
                                                actor=AGENT), now)

    assert problem("100.00", 14) is None
    assert "more than 14 days ahead" in (problem("100.00", 15) or "")
    assert "exceeds the outstanding balance" in (problem("1000.01", 3) or "")
    c.make_promise(PromiseRequest(amount=Money.of("100.00", "CNY"),
                                  due_date=today + timedelta(days=1), actor=AGENT), now)
    assert "still active" in (problem("100.00", 2) or "")
    later = now + timedelta(days=6)
    c.check_promise(later)
    assert c.state.agreements.broken_promises == 1
    assert "more than 7 days ahead" in (c.promise_problem(PromiseRequest(
        amount=Money.of("100.00", "CNY"), due_date=today + timedelta(days=14),
        actor=AGENT), later) or "")


def test_second_broken_promise_escalates_to_legal_and_plans_the_demand() -> None:
    now = datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI).astimezone(UTC)
    c = opened(now, dpd=3)
    for _ in range(2):
        today = now.astimezone(SHANGHAI).date()
        c.make_promise(PromiseRequest(amount=Money.of("100.00", "CNY"),
                                      due_date=today + timedelta(days=1), actor=AGENT), now)
        now += timedelta(days=6)
        c.check_promise(now)
    assert c.state.stage is Stage.LEGAL and c.state.legal.phase is LegalPhase.DEMAND_PENDING
    assert c.state.rescore, "broken promises change the borrower's segment"
    c.state.rescore = False
    action = plan(c, now)
    assert action is not None and action.kind is ActionKind.WRITE_OFF, \
        "the legal case child workflow asks for the demand; nothing happens before"
    c.state.legal.demand_requested = True
    action = plan(c, now)
    assert action is not None and action.kind is ActionKind.SEND_DEMAND
    c.demand_sent(now, True, "letter")
    assert c.state.legal.phase is LegalPhase.CURE_PERIOD
    assert not c.state.legal.demand_requested
    action = plan(c, now)
    assert action is not None and action.kind is ActionKind.WRITE_OFF, \
        "the cure period is timed by the legal case, not here"


def test_payments_are_exact_and_deduplicated() -> None:
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    c = opened(now, dpd=3, outstanding="100.10")
    first = c.apply_payment(payment("0.10", "R1"), now)
    assert isinstance(first[0], PaymentRecorded) and c.state.outstanding == Decimal("100.00")
    again = c.apply_payment(payment("0.10", "R1"), now)
    assert isinstance(again[0], EventRecorded) and again[0].event == "payment_duplicate_ignored"
    assert c.state.outstanding == Decimal("100.00")
    closing = c.apply_payment(payment("150.00", "R2"), now)
    assert c.state.outcome == "PAID"
    assert isinstance(closing[0], PaymentRecorded) and closing[0].overpaid == Decimal("50.00")
    after = c.apply_payment(payment("5.00", "R3"), now)
    assert isinstance(after[0], EventRecorded) and after[0].event == "payment_after_close"
    assert plan(c, now) is None


def test_legal_decision_rules() -> None:
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    c = opened(now, dpd=3)
    approve = LegalDecision(approve=True, actor=SUPERVISOR, reason="ok")
    assert "no legal referral is awaiting approval" in (c.legal_decision_problem(approve) or "")
    c.end_reminder(now)
    c.end_negotiation(now)
    c.demand_sent(now, True, "")
    c.cure_expired(now)
    assert c.legal_decision_problem(LegalDecision(approve=True, actor=AGENT, reason="x"))
    assert c.legal_decision_problem(approve) is None
    c.decide_legal(approve, now)
    assert c.state.legal.phase is LegalPhase.REFERRED
    action = plan(c, now)
    assert action is not None and action.kind is ActionKind.WRITE_OFF
    assert action.due_at == write_off_at(c)


def test_cancel_after_close_is_recorded_not_applied() -> None:
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    c = opened(now, dpd=3)
    c.cancel(CancelRequest(reason="restructured"), now)
    assert c.state.outcome == "CANCELLED"
    entries = c.cancel(CancelRequest(reason="again"), now)
    assert isinstance(entries[0], EventRecorded) and entries[0].event == "cancel_ignored"
    assert c.state.close_reason == "restructured"


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/New_York", "Europe/London"])
def test_write_off_is_local_midnight_at_the_policy_dpd(tz: str) -> None:
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    c = opened(now, dpd=10, tz=tz)
    moment = write_off_at(c)
    assert c.loan.days_past_due(moment) == STANDARD.write_off_dpd
    assert c.loan.days_past_due(moment - timedelta(seconds=1)) == STANDARD.write_off_dpd - 1

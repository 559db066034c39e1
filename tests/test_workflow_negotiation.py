"""Negotiation and legal in depth, on the time-skipping server: plans (child workflow),
settlements, the work queue with SLAs, legal cases through judgment, segments."""

from __future__ import annotations

from datetime import date, time, timedelta
from decimal import Decimal
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from duecourse.activities import build_activities
from duecourse.channels import OutboxChannel
from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.agreements.terms import (
    Assignment,
    InstalmentSpec,
    PlanProposal,
    SettlementDecision,
    SettlementOffer,
)
from duecourse.domain.calendar import local_date, wall_clock
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult, LegalDecision
from duecourse.domain.compliance import HoldKind
from duecourse.domain.compliance.requests import HoldRequest
from duecourse.domain.legal.case import CaseEvent, CaseEventKind
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel
from duecourse.domain.work.queue import TaskCompletion
from duecourse.policies import load_policy
from duecourse.runtime import build_worker
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.temporal.client import ActionRejected
from tests.conftest import Harness, TrackingClient, advance_to_local, settings_for_tests
from tests.factories import AGENT, SUPERVISOR, make_loan, payment

STANDARD = load_policy("standard").model_copy(update={"segments": {}})
CNY = "CNY"


async def start(h: Harness, policy: object = STANDARD, **kwargs: object) -> LoanIntake:
    loan = make_loan(await h.env.get_current_time(), **kwargs)  # type: ignore[arg-type]
    await h.client.start(loan, policy)  # type: ignore[arg-type]
    await h.settle(loan.loan_id)
    return loan


async def today(h: Harness, loan: LoanIntake) -> date:
    return local_date(await h.env.get_current_time(), loan.borrower.timezone)


def plan_of(first: date, amounts: list[str], every: int = 30) -> PlanProposal:
    return PlanProposal(actor=AGENT, note="agreed on the phone", instalments=[
        InstalmentSpec(due_date=first + timedelta(days=every * i), amount=Money.of(a, CNY))
        for i, a in enumerate(amounts)])


async def sleep_until(h: Harness, loan: LoanIntake, day: date) -> None:
    """Advance the clock to noon (borrower time) of `day`."""
    now = await h.env.get_current_time()
    target = local_date(now, loan.borrower.timezone)
    await h.env.sleep(timedelta(days=(day - target).days, hours=1))


async def agreement(h: Harness, loan: LoanIntake, kind: str) -> dict:
    rows = [r for r in await h.rows(t.agreements, loan_id=loan.loan_id)
            if r["agreement_type"] == kind]
    assert len(rows) == 1, rows
    return rows[0]


# --------------------------------------------------------------------------- plans
async def test_six_instalment_plan_paid_in_full_ends_paid(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=10, outstanding="1200.00")
    first = await today(h, loan) + timedelta(days=7)
    accepted = await h.client.propose_plan(loan.loan_id, plan_of(first, ["200.00"] * 6))
    assert accepted.plan_id == "PLAN1" and len(accepted.instalments) == 6
    status = await h.client.status(loan.loan_id)
    assert status.stage == "NEGOTIATION" and status.plan is not None
    assert [i.due_date for i in status.plan.instalments][-1] == first + timedelta(days=150)
    for n in range(6):
        await sleep_until(h, loan, first + timedelta(days=30 * n - 1))
        await h.client.report_payment(loan.loan_id, payment("200.00", f"INST-{n + 1}"))
        await h.settle(loan.loan_id)
    result = await h.client.result(loan.loan_id)
    assert result.outcome == "PAID"
    plan_row = await agreement(h, loan, "plan")
    assert plan_row["status"] == "COMPLETED" and plan_row["terms"]["late"] == 0
    paid = [i["status"] for i in plan_row["terms"]["instalments"]]
    assert paid == ["paid"] * 6
    reminders = [c for c in await h.rows(t.contact_attempts, loan_id=loan.loan_id)
                 if c["template"] == "plan_instalment_reminder"]
    assert len(reminders) == 6, "a reminder before each due date"
    child = await h.env.client.get_workflow_handle(accepted.workflow_id).describe()
    assert child.status.name == "COMPLETED"


async def test_one_late_instalment_within_tolerance_continues(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=10, outstanding="900.00")
    first = await today(h, loan) + timedelta(days=5)
    await h.client.propose_plan(loan.loan_id, plan_of(first, ["300.00"] * 3))
    await sleep_until(h, loan, first + timedelta(days=STANDARD.plans.grace_days + 2))
    status = await h.client.status(loan.loan_id)
    assert status.plan is not None and status.plan.status == "ACTIVE" and status.plan.late == 1
    assert status.plan.instalments[0].status == "late"
    await h.client.report_payment(loan.loan_id, payment("300.00", "LATE-1"))
    for n in (1, 2):
        await sleep_until(h, loan, first + timedelta(days=30 * n))
        await h.client.report_payment(loan.loan_id, payment("300.00", f"ON-TIME-{n}"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"
    plan_row = await agreement(h, loan, "plan")
    assert plan_row["status"] == "COMPLETED" and plan_row["terms"]["late"] == 1


@pytest.mark.parametrize("on_broken", ["negotiation", "legal"])
async def test_missed_instalments_break_the_plan(harness: Harness, on_broken: str) -> None:
    h = harness
    policy = STANDARD.model_copy(update={"plans": STANDARD.plans.model_copy(
        update={"on_broken": on_broken})})
    loan = await start(h, policy, dpd=10, outstanding="900.00")
    first = await today(h, loan) + timedelta(days=5)
    await h.client.propose_plan(loan.loan_id, plan_of(first, ["300.00"] * 3))
    await sleep_until(h, loan, first + timedelta(days=30 + STANDARD.plans.grace_days + 2))
    status = await h.client.status(loan.loan_id)
    assert status.plan is not None and status.plan.status == "BROKEN"
    assert status.plan.late == 2
    assert status.stage == ("NEGOTIATION" if on_broken == "negotiation" else "LEGAL")
    kinds = [r["kind"] for r in await h.rows(t.audit_events, loan_id=loan.loan_id)]
    assert "plan_broken" in kinds
    assert (await agreement(h, loan, "plan"))["status"] == "BROKEN"


async def test_a_hold_pauses_the_plan_and_gives_the_days_back(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=10, outstanding="900.00")
    first = await today(h, loan) + timedelta(days=5)
    await h.client.propose_plan(loan.loan_id, plan_of(first, ["300.00"] * 3))
    await h.client.hold(loan.loan_id, HoldRequest(
        action="start", kind=HoldKind.HARDSHIP, days=30, actor=AGENT, reference="job loss"))
    await h.env.sleep(timedelta(days=20))  # the first date and its grace pass in the hold
    frozen = (await h.client.status(loan.loan_id)).plan
    assert frozen is not None and frozen.late == 0 and frozen.status == "ACTIVE"
    assert [i.status for i in frozen.instalments] == ["due"] * 3
    await h.env.sleep(timedelta(days=11))  # the hold ends by itself on day 30
    await h.settle(loan.loan_id)
    status = await h.client.status(loan.loan_id)
    assert status.frozen is None and status.plan is not None
    moved = [first + timedelta(days=30 + 30 * i) for i in range(3)]
    assert [i.due_date for i in status.plan.instalments] == moved
    assert status.plan.paused_days == 30 and status.plan.late == 0
    events = [r for r in await h.rows(t.audit_events, loan_id=loan.loan_id)
              if r["kind"] == "plan_rescheduled"]
    assert len(events) == 1 and events[0]["data"]["details"]["paused_days"] == 30
    # After the hold, lateness is judged again - against the new dates.
    await sleep_until(h, loan, moved[0] + timedelta(days=STANDARD.plans.grace_days + 2))
    plan = (await h.client.status(loan.loan_id)).plan
    assert plan is not None and plan.late == 1 and plan.instalments[0].status == "late"


async def test_a_plan_agreed_during_a_hold_waits_for_it_to_end(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=10, outstanding="600.00")
    await h.client.hold(loan.loan_id, HoldRequest(
        action="start", kind=HoldKind.HARDSHIP, days=10, actor=AGENT))
    await h.env.sleep(timedelta(days=2))
    first = await today(h, loan) + timedelta(days=3)
    await h.client.propose_plan(loan.loan_id, plan_of(first, ["300.00"] * 2))
    await h.env.sleep(timedelta(days=9))  # the hold ends 8 days after the plan began
    await h.settle(loan.loan_id)
    plan = (await h.client.status(loan.loan_id)).plan
    assert plan is not None and plan.paused_days == 8 and plan.late == 0
    assert plan.instalments[0].due_date == first + timedelta(days=8)


async def test_invalid_plans_are_rejected_and_change_nothing(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=10, outstanding="1200.00")
    history_before = await h.settle(loan.loan_id)
    before = (await h.client.status(loan.loan_id)).model_dump(exclude={"as_of"})
    day = await today(h, loan)
    cases = [
        (plan_of(day + timedelta(days=5), ["100.00"] * 12 + ["0.00"] * 0 + ["0"] * 0)
         .model_copy(update={"instalments": plan_of(day + timedelta(days=5),
                                                    ["92.30"] * 12 + ["92.40"],
                                                    every=7).instalments}),
         "13 instalments exceed the maximum of 12"),
        (plan_of(day + timedelta(days=5), ["600.00", "500.00"]), "totals 1100.00"),
        (plan_of(day + timedelta(days=45), ["600.00", "600.00"]), "at most 30 allowed"),
        (plan_of(day + timedelta(days=5), ["600.00", "600.00"], every=45),
         "at most 31 allowed"),
        (plan_of(day + timedelta(days=5), ["20.00", "1180.00"]), "below the minimum of 60.00"),
        (plan_of(day - timedelta(days=1), ["600.00", "600.00"]), "in the past"),
    ]
    for proposal, reason in cases:
        with pytest.raises(ActionRejected, match=reason):
            await h.client.propose_plan(loan.loan_id, proposal)
    wrong = PlanProposal(actor=AGENT, instalments=[InstalmentSpec(
        due_date=day + timedelta(days=5), amount=Money.of("1200.00", "USD"))])
    with pytest.raises(ActionRejected, match="must be in CNY"):
        await h.client.propose_plan(loan.loan_id, wrong)
    await h.assert_no_trace(loan.loan_id, history_before, before)
    assert await h.rows(t.agreements, loan_id=loan.loan_id) == []


# --------------------------------------------------------------------------- settlements
async def test_settlement_within_agent_limit_paid_ends_settled(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=20)
    pay_by = await today(h, loan) + timedelta(days=7)
    result = await h.client.offer_settlement(loan.loan_id, SettlementOffer(
        amount=Money.of("850.00", CNY), pay_by=pay_by, actor=AGENT))
    assert result.status == "ACCEPTED" and not result.needs_approval
    assert result.discount == Decimal("0.1500")
    await h.env.sleep(timedelta(days=3))
    await h.client.report_payment(loan.loan_id, payment("850.00", "SETTLE-1"))
    final = await h.client.result(loan.loan_id)
    assert final.outcome == "SETTLED" and "150.00 CNY waived" in final.reason
    row = await agreement(h, loan, "settlement")
    assert row["status"] == "PAID" and Decimal(row["terms"]["waived"]) == Decimal("150.00")
    assert row["terms"]["offered_by"] == f"agent:{AGENT.id}"


async def test_deeper_settlement_waits_for_a_supervisor(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=20)
    pay_by = await today(h, loan) + timedelta(days=10)
    with pytest.raises(ActionRejected, match=r"below the policy floor of 400.00 CNY \(40%"):
        await h.client.offer_settlement(loan.loan_id, SettlementOffer(
            amount=Money.of("350.00", CNY), pay_by=pay_by, actor=AGENT))
    result = await h.client.offer_settlement(loan.loan_id, SettlementOffer(
        amount=Money.of("600.00", CNY), pay_by=pay_by, actor=AGENT))
    assert result.status == "PENDING_APPROVAL" and result.needs_approval and result.task_id
    queue = await h.tasks(assignee="supervisors")
    assert [x["task_id"] for x in queue if x["kind"] == "approve_settlement"] == [
        result.task_id]
    await h.client.report_payment(loan.loan_id, payment("600.00", "DEEP-1"))
    status = await h.client.status(loan.loan_id)
    assert status.outcome is None, "not settled before a supervisor approves"
    assert status.outstanding.amount == Decimal("400.00")
    with pytest.raises(ActionRejected, match="only a supervisor"):
        await h.client.decide_settlement(loan.loan_id, SettlementDecision(
            approve=True, actor=AGENT, reason="I think it is fine"))
    with pytest.raises(ActionRejected, match="only a supervisor"):
        await h.client.complete_task(loan.loan_id, TaskCompletion(
            task_id=result.task_id, outcome="approved", actor=AGENT))
    done = await h.client.complete_task(loan.loan_id, TaskCompletion(
        task_id=result.task_id, outcome="approved", actor=SUPERVISOR, note="hardship case"))
    assert done.outcome == "approved"
    final = await h.client.result(loan.loan_id)
    assert final.outcome == "SETTLED" and "400.00 CNY waived" in final.reason
    row = await agreement(h, loan, "settlement")
    assert row["terms"]["decided_by"] == f"supervisor:{SUPERVISOR.id}"


# --------------------------------------------------------------------------- work queue
async def test_unhandled_task_escalates_after_its_sla(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, ZoneInfo("Asia/Shanghai"), time(9, 0))  # calls in daytime
    loan = await start(h, dpd=3)
    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.SMS, result=ContactResult.BORROWER_REPLIED, actor=AGENT))
    await h.env.sleep(timedelta(hours=3))
    calls = await h.tasks(loan_id=loan.loan_id)
    assert len(calls) == 1 and calls[0]["kind"] == "call_borrower"
    assert calls[0]["assignee"] == "agents" and calls[0]["escalated_at"] is None
    await h.env.sleep(STANDARD.tasks.call_sla)
    escalated = (await h.tasks(loan_id=loan.loan_id))[0]
    assert escalated["assignee"] == "supervisors" and escalated["escalated_at"] is not None
    kinds = [r["kind"] for r in await h.rows(t.audit_events, loan_id=loan.loan_id)]
    assert "task_escalated" in kinds
    alerts = [a["subject"] for a in await h.rows(t.ops_alerts, loan_id=loan.loan_id)]
    assert any("missed its SLA" in a for a in alerts)
    done = await h.client.complete_task(loan.loan_id, TaskCompletion(
        task_id=escalated["task_id"], outcome="reached", actor=SUPERVISOR))
    assert done.stage == "NEGOTIATION"
    assert (await h.tasks(loan_id=loan.loan_id, status="done"))[0]["outcome"] == "reached"
    with pytest.raises(ActionRejected, match="already done"):
        await h.client.complete_task(loan.loan_id, TaskCompletion(
            task_id=escalated["task_id"], outcome="reached", actor=AGENT))


async def test_assignment_rules_and_search_attribute(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=3)
    taken = await h.client.assign_agent(loan.loan_id, Assignment(agent_id="agent-7",
                                                                 actor=AGENT))
    assert taken.assigned_agent == "agent-7" and taken.previous is None
    other = Actor(kind=ActorKind.AGENT, id="agent-9")
    with pytest.raises(ActionRejected, match="only a supervisor or ops"):
        await h.client.assign_agent(loan.loan_id, Assignment(agent_id="agent-9", actor=other))
    moved = await h.client.assign_agent(loan.loan_id, Assignment(agent_id="agent-9",
                                                                 actor=SUPERVISOR))
    assert moved.previous == "agent-7"
    described = await h.client.handle(loan.loan_id).describe()
    attrs = {p.key.name: p.value for p in described.typed_search_attributes}
    assert attrs["AssignedAgent"] == "agent-9" and attrs["Segment"]
    events = [r for r in await h.rows(t.audit_events, loan_id=loan.loan_id)
              if r["kind"] == "agent_assigned"]
    assert [(e["actor_id"], e["data"]["details"]["agent"]) for e in events] == [
        ("agent-7", "agent-7"), ("sup-1", "agent-9")]


# --------------------------------------------------------------------------- legal case
async def test_legal_case_through_judgment(harness: Harness) -> None:
    h = harness
    loan = await start(h, dpd=5)
    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT))
    await h.env.sleep(timedelta(days=46))
    status = await h.client.status(loan.loan_id)
    assert status.stage == "LEGAL" and status.legal_phase == "AWAITING_APPROVAL"
    task = next(x for x in await h.tasks(loan_id=loan.loan_id) if x["kind"] == "approve_legal")
    await h.client.complete_task(loan.loan_id, TaskCompletion(
        task_id=task["task_id"], outcome="approved", actor=SUPERVISOR,
        note="no response to demand"))
    await h.env.sleep(timedelta(hours=1))
    day = await today(h, loan)
    filed = CaseEvent(kind=CaseEventKind.FILED, occurred_on=day, actor=SUPERVISOR,
                      details="district court, case 2027-001")
    case = await h.client.record_case_event(loan.loan_id, filed)
    assert case.referral is not None and case.referral.partner == STANDARD.legal.partner
    await h.env.sleep(timedelta(days=30))
    await h.client.record_case_event(loan.loan_id, CaseEvent(
        kind=CaseEventKind.HEARING, occurred_on=day + timedelta(days=30), actor=SUPERVISOR))
    judgment = CaseEvent(kind=CaseEventKind.JUDGMENT, occurred_on=day + timedelta(days=31),
                         actor=SUPERVISOR, amount=Money.of("1050.00", CNY),
                         details="judgment for the lender incl. costs")
    case = await h.client.record_case_event(loan.loan_id, judgment)
    assert [e.kind for e in case.events] == ["filed", "hearing", "judgment"]
    with pytest.raises(ActionRejected, match="cannot follow the judgment"):
        await h.client.record_case_event(loan.loan_id, CaseEvent(
            kind=CaseEventKind.HEARING, occurred_on=day + timedelta(days=32),
            actor=SUPERVISOR))
    await h.client.report_payment(loan.loan_id, payment("1000.00", "JUDGMENT-PAID"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"
    await h.settle(loan.loan_id)
    child = await h.env.client.get_workflow_handle(case.workflow_id).describe()
    assert child.status.name == "COMPLETED"
    documents = {d["kind"] for d in await h.rows(t.documents, loan_id=loan.loan_id)}
    assert documents == {"demand_letter", "referral_pack"}
    kinds = [r["kind"] for r in await h.rows(t.audit_events, loan_id=loan.loan_id)]
    for expected in ("legal_referral_approved", "legal_referred", "case_filed",
                     "case_hearing", "case_judgment"):
        assert expected in kinds


async def filed_case(h: Harness) -> tuple[LoanIntake, date]:
    """A loan through negotiation and an approved referral to a filed case; the filing
    date (borrower-local)."""
    loan = await start(h, dpd=5)
    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT))
    await h.env.sleep(timedelta(days=46))
    await h.client.decide_legal_referral(loan.loan_id, LegalDecision(
        approve=True, actor=SUPERVISOR, reason="refer"))
    await h.env.sleep(timedelta(hours=1))
    day = await today(h, loan)
    await h.client.record_case_event(loan.loan_id, CaseEvent(
        kind=CaseEventKind.FILED, occurred_on=day, actor=SUPERVISOR))
    return loan, day


async def test_legal_case_closed_as_uncollectible_writes_the_loan_off(
        harness: Harness) -> None:
    h = harness
    loan, day = await filed_case(h)
    await h.client.record_case_event(loan.loan_id, CaseEvent(
        kind=CaseEventKind.CLOSED, occurred_on=day, actor=SUPERVISOR, outcome="written_off",
        details="debtor has no assets"))
    await h.settle(loan.loan_id)  # the case reports back before the clock may jump
    final = await h.client.result(loan.loan_id)
    assert final.outcome == "WRITTEN_OFF" and "uncollectible" in final.reason


async def test_a_case_closed_as_paid_alerts_ops_until_the_payment_arrives(
        harness: Harness) -> None:
    h = harness
    loan, day = await filed_case(h)
    await h.client.record_case_event(loan.loan_id, CaseEvent(
        kind=CaseEventKind.CLOSED, occurred_on=day, actor=SUPERVISOR, outcome="paid",
        details="debtor paid the partner in full"))
    await h.settle(loan.loan_id)
    status = await h.client.status(loan.loan_id)
    assert status.stage == "LEGAL" and status.outcome is None  # no money seen yet
    alerts = [a["subject"] for a in await h.rows(t.ops_alerts, loan_id=loan.loan_id)]
    assert any("closed as paid" in a for a in alerts), alerts
    await h.client.report_payment(loan.loan_id, payment("1000.00", "PARTNER-REMIT-1"))
    assert (await h.client.result(loan.loan_id)).outcome == "PAID"


# --------------------------------------------------------------------------- segments
async def test_segments_change_the_cadence_and_channels(ts_env: WorkflowEnvironment,
                                                        ledger: Ledger) -> None:
    policy = load_policy("standard")  # with its segment treatments
    queue = f"tq-{uuid4().hex}"
    client = TrackingClient(ts_env, queue)
    acts = build_activities(ledger, OutboxChannel(ledger), "Acme", "400-800",
                            scorer="tests.scorers:by_loan_id")
    async with build_worker(ts_env.client, ledger, settings_for_tests(), queue,
                            activities=acts):
        now = await ts_env.get_current_time()
        loans = {}
        for segment in ("self_cure", "wont_pay"):
            loan = make_loan(now, dpd=1).model_copy(update={
                "loan_id": f"L-{segment}-{uuid4().hex[:6]}"})
            await client.start(loan, policy)
            loans[segment] = loan
        await ts_env.sleep(timedelta(days=12))
        first_reminder = {}
        channels = {}
        for segment, loan in loans.items():
            status = await client.status(loan.loan_id)
            assert status.segment == segment
            rows = await ledger.rows(t.contact_attempts, loan_id=loan.loan_id)
            first_reminder[segment] = next(r["scheduled_for"] for r in rows
                                           if r["step"] == "reminder-sms")
            channels[segment] = {r["channel"] for r in rows}
        await client.end_all()
    # reminder-sms is due + 4 days at 18:00: cadence 1.5 stretches the days to 6, cadence
    # 0.75 shrinks them to 3 (rounded half up), and both keep the time of day
    zone = loans["self_cure"].borrower.timezone
    due = loans["self_cure"].due_date
    for segment, days in (("self_cure", 6), ("wont_pay", 3)):
        planned = wall_clock(due, timedelta(days=days, hours=18), zone)
        assert timedelta(0) <= first_reminder[segment] - planned < timedelta(minutes=1)
    assert "voice" not in channels["self_cure"], "light digital nudges only"
    assert "voice" in channels["wont_pay"]

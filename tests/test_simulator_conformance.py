"""The simulator decides as the workflow does (issue 14 item 1's conformance test).

Ten loans with scripted borrowers - pays in full on day 3, promises then keeps, never
answers, opts out of SMS, answers the agent's call in negotiation and promises, disputes
in writing and pays once verified, agrees a plan and keeps it, agrees a plan and breaks
it, accepts a settlement a supervisor approves, and a legal referral a supervisor approves
- run once through the real `LoanCollection` workflows (and their plan and legal case
children) on the time-skipping server and once through the simulator, each act at the
instant the workflow received it. Read back from both ledgers, the contacts (step,
channel, status, borrower-local date), the compliance decisions (step, channel, verdict,
code, date), the stage transitions and outcomes, promises, payments, tasks, agreements
and every decided fact in the audit trail are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.agreements.terms import (
    InstalmentSpec,
    PlanProposal,
    SettlementDecision,
    SettlementOffer,
)
from duecourse.domain.calendar import local_date, wall_clock
from duecourse.domain.case.commands import LegalDecision, PaymentReport, PromiseRequest
from duecourse.domain.compliance.requests import (
    ContactRequest,
    DisputeChange,
    PreferenceChange,
)
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel
from duecourse.domain.scoring import scorecard
from duecourse.domain.work.queue import TaskCompletion, TaskKind
from duecourse.lab import sim_acts
from duecourse.lab.sim_loan import LoanRun
from duecourse.lab.simulator import open_run
from duecourse.policies import load_policy
from duecourse.snapshots import take_snapshot
from duecourse.store import tables as t
from tests.conftest import Harness, advance_to_local
from tests.factories import AGENT, SUPERVISOR, make_loan

POLICY = load_policy("standard")
HORIZON = 62  # days: every script has played out, the silent loans reach legal
BORROWER = Actor(kind=ActorKind.BORROWER, id="borrower")
PLATFORM = Actor(kind=ActorKind.PLATFORM, id="platform")


@dataclass(frozen=True)
class Act:
    """One scripted act: on borrower-local `day` (0: hand-over day) at `at` local."""

    day: int
    at: time
    kind: str  # pay | promise | opt_out_sms | dispute | verify | agent_reached | plan |
    #            settle | approve_settlement | approve_legal
    amount: str = ""
    promise_days: int = 0  # promise: due in; plan: first instalment in; settle: pay by in
    amounts: tuple[str, ...] = ()  # plan: the instalments
    gap: int = 0  # plan: days between instalments


@dataclass
class Script:
    name: str
    loan: LoanIntake
    acts: list[Act]
    done: list[tuple[datetime, Act]] = field(default_factory=list)


def scripts(now: datetime) -> list[Script]:
    cn = {"tz": "Asia/Shanghai"}
    us = {"tz": "America/New_York", "jurisdiction": "US", "currency": "USD",
          "phones": ["+12125550143"], "language": "en", "address": "1 Main St, New York"}
    gb = {"tz": "Europe/London", "jurisdiction": "GB", "currency": "GBP",
          "phones": ["+447700900123"], "language": "en", "address": "1 High St, London"}
    return [
        Script("pays in full on day 3", make_loan(now, dpd=1, **cn),  # type: ignore[arg-type]
               [Act(3, time(11), "pay", "1000.00")]),
        Script("promises then keeps", make_loan(now, dpd=2, **cn),  # type: ignore[arg-type]
               [Act(2, time(15), "promise", "1000.00", promise_days=5),
                Act(7, time(11), "pay", "1000.00")]),
        Script("never answers", make_loan(now, dpd=1, **gb), []),  # type: ignore[arg-type]
        Script("opts out of SMS", make_loan(now, dpd=1, **cn),  # type: ignore[arg-type]
               [Act(0, time(16), "opt_out_sms")]),
        Script("answers the agent's call, promises and keeps it",
               make_loan(now, dpd=1, **cn),  # type: ignore[arg-type]
               [Act(17, time(11), "agent_reached"),  # in negotiation since day 16
                Act(17, time(11, 30), "promise", "1000.00", promise_days=4),
                Act(21, time(10), "pay", "1000.00")]),
        Script("disputes, then pays once verified",
               make_loan(now, dpd=3, **us),  # type: ignore[arg-type]
               [Act(4, time(13), "dispute"), Act(14, time(13), "verify"),
                Act(20, time(12), "pay", "1000.00")]),
        Script("agrees a plan and keeps it", make_loan(now, dpd=1, **cn),  # type: ignore[arg-type]
               [Act(2, time(15), "plan", promise_days=5, amounts=PLAN, gap=15),
                Act(7, time(11), "pay", "400.00"), Act(22, time(11), "pay", "300.00"),
                Act(37, time(11), "pay", "300.00")]),
        Script("agrees a plan and breaks it", make_loan(now, dpd=1, **cn),  # type: ignore[arg-type]
               [Act(2, time(15), "plan", promise_days=5, amounts=PLAN, gap=15),
                Act(7, time(11), "pay", "400.00")]),
        Script("accepts a settlement a supervisor approves",
               make_loan(now, dpd=1, **cn),  # type: ignore[arg-type]
               [Act(2, time(15), "settle", "700.00", promise_days=7),
                Act(3, time(11), "approve_settlement"), Act(6, time(11), "pay", "700.00")]),
        Script("no letter nor email: legal at once, a supervisor approves",
               make_loan(now, dpd=1, address=None, email=None, **cn),  # type: ignore[arg-type]
               [Act(51, time(11), "approve_legal")]),  # approval asked on day 49
    ]


PLAN = ("400.00", "300.00", "300.00")


def when(s: Script, opened: datetime, act: Act) -> datetime:
    tz = s.loan.borrower.timezone
    day = local_date(opened, tz) + timedelta(days=act.day)
    return wall_clock(day, timedelta(hours=act.at.hour, minutes=act.at.minute), tz)


def due(s: Script, at: datetime, act: Act) -> date:
    return local_date(at, s.loan.borrower.timezone) + timedelta(days=act.promise_days)


def proposal(s: Script, at: datetime, act: Act) -> PlanProposal:
    first = due(s, at, act)
    return PlanProposal(actor=AGENT, instalments=[
        InstalmentSpec(due_date=first + timedelta(days=act.gap * n),
                       amount=Money.of(amount, s.loan.currency))
        for n, amount in enumerate(act.amounts)])


# ------------------------------------------------------------------ the two runs
async def live(h: Harness, s: Script, at: datetime, act: Act) -> None:
    """The act through the client, as a platform, borrower or agent does it."""
    loan_id, cur = s.loan.loan_id, s.loan.currency
    if act.kind == "pay":
        await h.client.report_payment(loan_id, PaymentReport(
            reference=f"PAY-{act.day}", amount=Money.of(act.amount, cur), paid_at=at,
            actor=PLATFORM))
    elif act.kind == "promise":
        await h.client.promise_to_pay(loan_id, PromiseRequest(
            amount=Money.of(act.amount, cur), due_date=due(s, at, act), actor=AGENT))
    elif act.kind == "opt_out_sms":
        await h.client.update_contact_preferences(loan_id, PreferenceChange(
            opt_out=[Channel.SMS], actor=BORROWER))
    elif act.kind == "dispute":
        await h.client.dispute(loan_id, DisputeChange(
            action="opened", actor=BORROWER, reason="not my debt", written=True))
    elif act.kind == "verify":
        await h.client.dispute(loan_id, DisputeChange(
            action="verified", actor=AGENT, reason="verification sent"))
    elif act.kind == "agent_reached":  # the agent asks first, calls, completes the task
        task = next(r for r in await h.tasks(loan_id=loan_id) if r["kind"] == "call_borrower")
        decision = await h.client.request_contact(loan_id, ContactRequest(
            channel=Channel.VOICE, actor=AGENT))
        assert decision.allowed, decision
        await h.client.complete_task(loan_id, TaskCompletion(
            task_id=task["task_id"], outcome="reached", actor=AGENT))
    elif act.kind == "plan":
        await h.client.propose_plan(loan_id, proposal(s, at, act))
    elif act.kind == "settle":
        result = await h.client.offer_settlement(loan_id, SettlementOffer(
            amount=Money.of(act.amount, cur), pay_by=due(s, at, act), actor=AGENT))
        assert result.needs_approval, result
    elif act.kind == "approve_settlement":
        await h.client.decide_settlement(loan_id, SettlementDecision(
            approve=True, actor=SUPERVISOR, reason="hardship shown"))
    elif act.kind == "approve_legal":
        await h.client.decide_legal_referral(loan_id, LegalDecision(
            approve=True, actor=SUPERVISOR, reason="no answer to any channel"))


def simulated(run: LoanRun, s: Script, at: datetime, act: Act) -> Callable[[], None]:
    """The same act through the simulator's handlers, at the same instant."""
    def go() -> None:
        if act.kind == "pay":
            sim_acts.report_payment(run, Decimal(act.amount), f"PAY-{act.day}", PLATFORM)
        elif act.kind == "promise":
            assert sim_acts.promise_to_pay(run, Decimal(act.amount), due(s, at, act), AGENT)
        elif act.kind == "opt_out_sms":
            sim_acts.opt_out(run, Channel.SMS, BORROWER)
        elif act.kind == "dispute":
            sim_acts.dispute(run, "opened", BORROWER, "not my debt", written=True)
        elif act.kind == "verify":
            sim_acts.dispute(run, "verified", AGENT, "verification sent")
        elif act.kind == "agent_reached":
            task = next(x for x in run.c.state.work.open_tasks
                        if x.kind is TaskKind.CALL_BORROWER)
            decision = sim_acts.request_contact(run, Channel.VOICE, AGENT)
            assert decision is not None and decision.allowed, decision
            assert sim_acts.complete_task(run, task.task_id, "reached", AGENT)
        elif act.kind == "plan":
            assert sim_acts.propose_plan(run, proposal(s, at, act)) is not None
        elif act.kind == "settle":
            assert sim_acts.offer_settlement(run, Decimal(act.amount), due(s, at, act), AGENT)
        elif act.kind == "approve_settlement":
            assert sim_acts.decide_settlement(run, True, "hardship shown", SUPERVISOR)
        elif act.kind == "approve_legal":
            assert sim_acts.decide_legal(run, True, "no answer to any channel", SUPERVISOR)
    return go


# ------------------------------------------------------------------ what is compared
def facts(s: Script, rows: dict[str, list[dict[str, Any]]], cut: datetime) -> dict[str, Any]:
    tz = ZoneInfo(s.loan.borrower.timezone)

    def before(items: list[dict[str, Any]], at: str) -> list[dict[str, Any]]:
        return [r for r in items if r[at] < cut]

    case = rows["collection_cases"][0]
    return {
        "contacts": sorted((r["step"], r["channel"], r["status"],
                            r["scheduled_for"].astimezone(tz).date())
                           for r in before(rows["contact_attempts"], "scheduled_for")
                           if r["status"] in ("sent", "made_by_person")),
        "decisions": sorted((r["step"], r["channel"], r["verdict"], r["code"],
                             r["proposed_at"].astimezone(tz).date())
                            for r in before(rows["compliance_decisions"], "proposed_at")),
        "transitions": [(r["from_stage"], r["to_stage"], r["outcome"])
                        for r in before(rows["stage_transitions"], "occurred_at")],
        "promises": [(r["status"], r["amount"], r["due_date"])
                     for r in before(rows["promises"], "occurred_at")],
        "payments": [(r["applied"], r["outstanding_after"])
                     for r in before(rows["payments"], "recorded_at")],
        "outcome": case["outcome"] if case["closed_at"] and case["closed_at"] < cut else None,
        "tasks": sorted((r["kind"], r["subject"], r["status"], r["escalated_at"] is not None)
                        for r in before(rows["tasks"], "created_at")),
        "agreements": sorted((r["agreement_type"], r["agreement_id"], r["status"], r["amount"])
                             for r in before(rows["agreements"], "updated_at")),
        "events": sorted((r["kind"], r["occurred_at"].astimezone(tz).date())
                         for r in before(rows["audit_events"], "occurred_at")
                         if r["kind"] not in NOT_DECIDED),
    }


NOT_DECIDED = {"case_opened", "contact_attempt", "ops_alert", "document_stored"}
"""Audit kinds written by the I/O around a decision (the channel's, the alerting's), which
the simulator does not imitate."""

TABLES = {"tasks": t.tasks, "audit_events": t.audit_events,
          "collection_cases": t.collection_cases, "contact_attempts": t.contact_attempts,
          "compliance_decisions": t.compliance_decisions,
          "stage_transitions": t.stage_transitions, "promises": t.promises,
          "payments": t.payments, "agreements": t.agreements}


@pytest.mark.timeout(600)  # ten loans over two months of virtual time, then ten runs
async def test_simulator_and_workflows_decide_alike(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, ZoneInfo("Asia/Shanghai"), time(10))
    plays = scripts(await h.env.get_current_time())
    for s in plays:
        await h.client.start(s.loan, POLICY)
    for s in plays:
        await h.settle(s.loan.loan_id)
    opened = {s.loan.loan_id: (await h.rows(t.collection_cases, loan_id=s.loan.loan_id))[0]
              for s in plays}
    start = min(c["opened_at"] for c in opened.values())
    agenda = sorted(((when(s, start, a), i, s, a) for i, s in enumerate(plays)
                     for a in s.acts), key=lambda x: (x[0], x[1]))
    for at, _i, s, act in agenda:
        await sleep_to(h, at)
        sent_at = await h.env.get_current_time()
        await live(h, s, sent_at, act)
        s.done.append((sent_at, act))
    cut = start + timedelta(days=HORIZON)
    await sleep_to(h, cut + timedelta(hours=1))
    for s in plays:
        await h.settle(s.loan.loan_id)

    for s in plays:
        case = opened[s.loan.loan_id]
        real = {name: await h.rows(table, loan_id=s.loan.loan_id)
                for name, table in TABLES.items()}
        rules = take_snapshot(s.loan.jurisdiction, s.loan.borrower.timezone,
                              POLICY.compliance, case["opened_at"])
        run = open_run(s.loan, POLICY, case["opened_at"], case["case_id"], scorecard, rules)
        for at, act in s.done:
            run.at(at, simulated(run, s, at, act))
        run.run(cut)
        sim = run.rows.finish()
        expected, got = facts(s, real, cut), facts(s, sim, cut)
        assert got == expected, s.name
        assert expected["contacts"] and expected["decisions"], s.name  # it did something
    seen = {s.name: facts(s, {n: await h.rows(tb, loan_id=s.loan.loan_id)
                              for n, tb in TABLES.items()}, cut) for s in plays}
    outcomes = {name: f["outcome"] for name, f in seen.items()}
    assert outcomes["pays in full on day 3"] == "PAID"
    assert outcomes["promises then keeps"] == "PAID"
    assert outcomes["disputes, then pays once verified"] == "PAID"
    assert outcomes["answers the agent's call, promises and keeps it"] == "PAID"
    assert outcomes["never answers"] is None
    assert outcomes["agrees a plan and keeps it"] == "PAID"
    assert ("plan", "PLAN1", "COMPLETED", Decimal("1000.00")) in \
        seen["agrees a plan and keeps it"]["agreements"]
    broken = seen["agrees a plan and breaks it"]
    assert outcomes["agrees a plan and breaks it"] is None
    assert ("plan", "PLAN1", "BROKEN", Decimal("1000.00")) in broken["agreements"]
    assert {k for k, _ in broken["events"]} >= {"plan_late", "plan_broken"}
    assert outcomes["accepts a settlement a supervisor approves"] == "SETTLED"
    legal = {k for k, _ in seen["no letter nor email: legal at once, a supervisor approves"][
        "events"]}
    assert {"legal_referral_approved", "legal_referred"} <= legal


async def sleep_to(h: Harness, at: datetime) -> None:
    now = await h.env.get_current_time()
    if at > now:
        await h.env.sleep(at - now)


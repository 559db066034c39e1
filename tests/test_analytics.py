"""Portfolio analytics on a real ledger (SQLite) written through the Ledger's own methods.

Two arms of the bundled demo-ab experiment, handed over 100 days ago, with numbers worked
out by hand:

- champion, 10 USD cases of 1000.00 at DPD 5: #0-3 pay in full on day 10 (PAID), #4-5 pay
  500 on day 20, #6-9 pay nothing. 3 SMS and a call each, one more SMS to #0 (41). #0-3's
  calls reached the borrower; #5's outcome is a third party's (no call of ours to one).
- challenger, 10 USD cases of 1000.00: #0-7 at DPD 5, #8-9 at DPD 40. #0-5 pay in full on
  day 5, #6 pays 250 on day 3, #8 pays in full on day 40, #9 is written off on day 20.
  2 SMS and an email each (30); #0-5 replied.
- two GBP cases outside any experiment (policy standard@1), opened 10 days and 1 day ago;
  five calls to the first are in doubt (the channel may have made them).
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from math import sqrt
from pathlib import Path
from typing import Any

import pytest

from duecourse.domain.actor import SYSTEM, Actor, ActorKind
from duecourse.domain.entries import (
    AgreementRecorded,
    ComplianceDecided,
    ContactLogged,
    EventRecorded,
    PaymentRecorded,
    PromiseRecorded,
    StageChanged,
    TaskRecorded,
)
from duecourse.domain.work.queue import Task, TaskKind, TaskStatus
from duecourse.lab import stats
from duecourse.lab.analytics import SCORECARD, champion_of, compute, scorers_for
from duecourse.lab.costs import CostTable
from duecourse.lab.figures import PortfolioFigures
from duecourse.store import Ledger, connect, migrate
from duecourse.store.ledger import ContactRecord
from duecourse.temporal.contracts import OpenLoan, RecordEntries, StrategyChoice
from tests.factories import make_loan
from tests.support.databases import blank_database

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
OPENED = NOW - timedelta(days=100)
COSTS = CostTable(currency="USD", channels={"sms": Decimal("0.05"), "voice": Decimal("0.60"),
                                            "email": Decimal("0.01")},
                  agent_tasks={"call_borrower": Decimal("3.00")})
AGENT = Actor(kind=ActorKind.AGENT, id="agent-7")


@dataclass
class Spec:
    """One case to write: what it was handed over as and what happened to it."""

    n: int
    arm: str | None
    dpd: int = 5
    currency: str = "USD"
    amount: str = "1000.00"
    opened: datetime = OPENED
    paid: list[tuple[int, str]] = field(default_factory=list)  # (day, amount)
    close: tuple[int, str] | None = None  # (day, outcome)
    contacts: list[str] = field(default_factory=list)  # channels
    entries: list[Any] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)  # channels
    experiment: str = "demo-ab"


def _event(key: str, day: int, name: str, actor: Actor = SYSTEM, **details: Any) -> Any:
    return ("event", key, day, name, actor, details)


async def write(ledger: Ledger, spec: Spec) -> None:
    loan = make_loan(spec.opened, dpd=spec.dpd, currency=spec.currency, outstanding=spec.amount,
                     jurisdiction="US" if spec.currency == "USD" else "GB",
                     tz="America/New_York" if spec.currency == "USD" else "Europe/London")
    case = f"case-{spec.experiment}-{spec.arm or 'none'}-{spec.n}"
    await ledger.open_case(OpenLoan(
        case_id=case, workflow_id=loan.workflow_id, loan=loan, policy="standard@1",
        opened_at=spec.opened,
        strategy=StrategyChoice(experiment=spec.experiment, strategy=spec.arm)
        if spec.arm else None))

    def at(day: int) -> datetime:
        return spec.opened + timedelta(days=day)

    entries: list[Any] = [StageChanged(key="stage:1", occurred_at=spec.opened, actor=SYSTEM,
                                       from_stage=None, to_stage="REMINDER",
                                       reason="handed over", days_past_due=spec.dpd)]
    outstanding = Decimal(spec.amount)
    for i, (day, amount) in enumerate(spec.paid):
        outstanding -= Decimal(amount)
        entries.append(PaymentRecorded(
            key=f"payment:{i}", occurred_at=at(day), actor=SYSTEM, reference=f"R{i}",
            amount=Decimal(amount), currency=spec.currency, paid_at=at(day),
            applied=Decimal(amount), overpaid=Decimal(0), outstanding_after=outstanding))
    if spec.close:
        day, outcome = spec.close
        entries.append(StageChanged(key="closed", occurred_at=at(day), actor=SYSTEM,
                                    from_stage="REMINDER", to_stage=None, outcome=outcome,
                                    reason="closed", days_past_due=spec.dpd + day))
    for i, item in enumerate(spec.entries):
        if isinstance(item, tuple):
            _, key, day, name, actor, details = item
            item = EventRecorded(key=f"event:{i}:{key}", occurred_at=at(day), actor=actor,
                                 event=name, details=details)
        entries.append(item)
    await ledger.record_entries(RecordEntries(case_id=case, workflow_id=loan.workflow_id,
                                              loan_id=loan.loan_id, entries=entries))
    sent = [(c, "sent") for c in spec.contacts] + [(c, "in_doubt") for c in spec.in_doubt]
    for i, (channel, status) in enumerate(sent):
        await ledger.record_contact(ContactRecord(
            idempotency_key=f"{case}:contact:{i}", case_id=case, loan_id=loan.loan_id,
            stage="REMINDER", step=f"step{i}", channel=channel, template="t", language="en",
            recipient="+12025550100", subject=None, body="overdue", status=status,
            provider_message_id=f"m{i}", scheduled_for=at(1), attempted_at=at(1)))


def promise(n: int, status: str, day: int) -> PromiseRecorded:
    return PromiseRecorded(key=f"promise:{n}:{status}", occurred_at=OPENED + timedelta(days=day),
                           actor=AGENT, promise_id=f"P{n}", amount=Decimal("100.00"),
                           currency="USD", due_date=(OPENED + timedelta(days=day)).date(),
                           status=status)


def plan(status: str, version: int) -> AgreementRecorded:
    return AgreementRecorded(key=f"plan:{version}", occurred_at=OPENED + timedelta(days=version),
                             actor=AGENT, agreement_id="PL1", agreement_type="plan",
                             status=status, amount=Decimal("900.00"), currency="USD",
                             version=version)


def decision(n: int, verdict: str, code: str) -> ComplianceDecided:
    at = OPENED + timedelta(days=1)
    return ComplianceDecided(key=f"decision:{n}", occurred_at=at, actor=SYSTEM, step="sms",
                             channel="sms", recipient="+12025550100", recipient_kind="debtor",
                             purpose="collection", proposed_at=at, verdict=verdict, code=code,
                             rule=f"rule {code}")


def task(n: int, status: TaskStatus) -> TaskRecorded:
    at = OPENED + timedelta(days=2)
    return TaskRecorded(key=f"task:{n}", occurred_at=at, actor=SYSTEM, task=Task(
        task_id=f"T{n}", kind=TaskKind.CALL_BORROWER, subject="call", assignee="agent-7",
        created_at=at, due_at=at + timedelta(days=1), status=status))


def outcome(result: str, kind: str = "debtor") -> Any:
    return _event("outcome", 3, "contact_outcome", channel="voice", result=result,
                  recipient_kind=kind)


def champion(n: int) -> Spec:
    extra: list[Any] = [
        _event("seg", 0, "segment_changed", segment="self_cure" if n < 5 else "cant_pay")]
    if n < 4:
        extra.append(outcome("reached"))
    extra += {
        0: [_event("assigned", 1, "agent_assigned", AGENT, agent="agent-9")],
        1: [_event("violation", 4, "contact_violation_reported", AGENT,
                   codes=["quiet_hours", "call_cap"])],
        2: [task(2, TaskStatus.DONE)],
        3: [task(3, TaskStatus.OPEN)],
        4: [promise(4, "ACTIVE", 2), promise(4, "KEPT", 20), outcome("no_answer")],
        5: [promise(5, "BROKEN", 20), outcome("reached", "third_party")],
        6: [promise(6, "ACTIVE", 2), promise(6, "BROKEN", 25), plan("ACTIVE", 1),
            plan("BROKEN", 2)],
        7: [decision(1, "blocked", "quiet_hours"), decision(2, "blocked", "quiet_hours"),
            decision(3, "deferred", "daily_cap"), decision(4, "allowed", "ok")],
        8: [_event("dispute", 5, "dispute_opened", reason="not mine")],
        9: [_event("optout", 5, "opted_out", channel="sms"),  # a STOP, and again
            _event("consent", 5, "sms_consent_withdrawn"),
            _event("again", 6, "opted_out", channel="sms"),
            _event("late", 99, "contact_skipped")],  # the ledger has seen day 99
    }.get(n, [])
    return Spec(n=n, arm="champion",
                paid=[(10, "1000.00")] if n < 4 else [(20, "500.00")] if n < 6 else [],
                close=(10, "PAID") if n < 4 else None,
                contacts=["sms"] * (4 if n == 0 else 3) + ["voice"], entries=extra)


def challenger(n: int) -> Spec:
    extra: list[Any] = [outcome("borrower_replied")] if n < 6 else []
    extra += {6: [promise(6, "ACTIVE", 2), promise(6, "KEPT", 3)],
              7: [plan("ACTIVE", 1), _event("cease", 5, "cease_communication"),
                  decision(5, "blocked", "opted_out")],
              9: [_event("stop", 5, "sms_consent_withdrawn")]}.get(n, [])
    paid = {6: [(3, "250.00")], 7: [], 8: [(40, "1000.00")], 9: []}.get(n, [(5, "1000.00")])
    close = {6: None, 7: None, 8: (40, "PAID"), 9: (20, "WRITTEN_OFF")}.get(n, (5, "PAID"))
    return Spec(n=n, arm="challenger", dpd=40 if n >= 8 else 5, paid=paid, close=close,
                contacts=["sms", "sms", "email"], entries=extra)


@pytest.fixture(params=["sqlite", "postgresql"])
async def book(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    """The two arms and the GBP cases, in SQLite and (when one answers) PostgreSQL."""
    async with blank_database(request.param, tmp_path, "analytics_test") as engine:
        await migrate(engine)
        ledger = Ledger(engine)
        for n in range(10):
            await write(ledger, champion(n))
            await write(ledger, challenger(n))
        await write(ledger, Spec(n=0, arm=None, currency="GBP", amount="500.00", dpd=3,
                                 opened=NOW - timedelta(days=10), paid=[(2, "100.00")],
                                 in_doubt=["voice"] * 5))
        await write(ledger, Spec(n=1, arm=None, currency="GBP", amount="500.00", dpd=3,
                                 opened=NOW - timedelta(days=1),
                                 entries=[_event("late", 1, "contact_skipped")]))
        yield ledger


def _group(figures: PortfolioFigures, key: str) -> Any:
    return next(g for g in figures.groups if g.key == key)


def _rates(rates: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {k: (r.part, r.whole) for k, r in rates.items() if r.part}


async def test_figures_per_strategy_are_the_ones_worked_out_by_hand(book: Ledger) -> None:
    f = await compute(book.engine, by="strategy", costs=COSTS, now=NOW)
    assert [g.key for g in f.groups] == ["demo-ab/challenger", "demo-ab/champion",
                                         "standard@1"]
    a, b = _group(f, "demo-ab/champion"), _group(f, "demo-ab/challenger")
    assert (a.loans, a.cases, a.closed, a.outcomes) == (10, 10, 4, {"PAID": 4})
    assert b.outcomes == {"PAID": 7, "WRITTEN_OFF": 1}
    # roll rates: one transition per 30-day period observed (days 0-30, 30-60, 60-90 of
    # the 100 seen): champion #4-9 roll 1-30 -> 31-60 -> 61-90 -> 90+
    assert _rates(a.roll_rates["1-30"]) == {"cured": (4, 10), "31-60": (6, 10)}
    assert _rates(a.roll_rates["31-60"]) == {"61-90": (6, 6)}
    assert _rates(a.roll_rates["61-90"]) == {"90+": (6, 6)}
    assert a.roll_rates["90+"]["90+"].whole == 0  # the period from day 90 is not over
    # challenger #6-7 roll like those; #8 (DPD 40) rolls 31-60 -> 61-90 and cures in
    # 61-90 on day 40; #9 (DPD 40) is written off from 31-60
    assert _rates(b.roll_rates["1-30"]) == {"cured": (6, 8), "31-60": (2, 8)}
    assert _rates(b.roll_rates["31-60"]) == {"61-90": (3, 4), "closed": (1, 4)}
    assert _rates(b.roll_rates["61-90"]) == {"90+": (2, 3), "cured": (1, 3)}
    assert (a.cure_rate.part, a.cure_rate.whole, a.cure_rate.value) == (4, 10, 0.4)
    assert {k: (r.part, r.whole) for k, r in b.cure_rate_by_bucket.items()} == {
        "1-30": (6, 8), "31-60": (0, 4), "61-90": (1, 3), "90+": (0, 0)}
    (rec_a,) = a.recovery
    assert (rec_a.currency, rec_a.handed_over, rec_a.recovered, rec_a.rate) == (
        "USD", Decimal("10000.00"), Decimal("5000.00"), 0.5)
    curve = {p.day: p.recovered for p in rec_a.curve}
    assert (curve[0], curve[9], curve[10], curve[19], curve[20], max(curve)) == (
        0.0, 0.0, 0.4, 0.4, 0.5, 100)
    assert b.recovery[0].rate == 0.725
    assert (a.promise_kept_rate.part, a.promise_kept_rate.whole) == (1, 3)
    assert (b.promise_kept_rate.part, b.promise_kept_rate.whole) == (1, 1)
    assert (a.plan_completion_rate.part, a.plan_completion_rate.whole) == (0, 1)
    assert b.plan_completion_rate.value is None  # an active plan has no result yet
    # 10 calls, and #5's third party reported reached with no call of ours to them (an
    # agent's own contact); #0-3's calls reached the borrower
    assert (a.right_party_contact_rate.part, a.right_party_contact_rate.whole) == (4, 11)
    assert (a.inbound_replies, b.inbound_replies) == (0, 6)
    # SMS and email report no outcome: replies are inbound, not right-party contacts
    assert (b.right_party_contact_rate.part, b.right_party_contact_rate.whole) == (0, 0)
    # 31 SMS x 0.05 + 10 calls x 0.60 + one completed call task x 3.00 = 10.55
    assert a.costs.model_dump() == {
        "contacts": 41, "contacts_by_channel": {"sms": 31, "voice": 10}, "agent_tasks": 1,
        "cost": Decimal("10.55"), "currency": "USD", "contacts_per_cure": 10.25,
        "cost_per_cure": Decimal("2.64"), "cost_per_unit_recovered": Decimal("0.0021")}
    assert (b.costs.cost, b.costs.cost_per_cure) == (Decimal("1.10"), Decimal("0.16"))
    assert a.complaints.model_dump() == {"disputes": 1, "opt_outs": 1, "cease_requests": 0}
    assert b.complaints.model_dump() == {"disputes": 0, "opt_outs": 1, "cease_requests": 1}
    assert a.compliance.model_dump() == {
        "blocks_by_rule": {"quiet_hours": 2}, "deferrals_by_rule": {"daily_cap": 1},
        "audit_violations": 2}
    assert b.compliance.blocks_by_rule == {"opted_out": 1}


async def test_the_total_keeps_currencies_apart_and_counts_only_observed_days(
        book: Ledger) -> None:
    f = await compute(book.engine, costs=COSTS, now=NOW)
    assert (f.total.cases, f.total.loans) == (22, 22)
    gbp = next(r for r in f.total.recovery if r.currency == "GBP")
    assert (gbp.handed_over, gbp.recovered, gbp.rate) == (
        Decimal("1000.00"), Decimal("100.00"), 0.1)
    # day 2 on: only the case handed over 10 days ago has been seen that long
    assert [(p.day, p.recovered) for p in gbp.curve] == [(0, 0.0), (1, 0.0)] + [
        (d, 0.2) for d in range(2, 11)]
    # the GBP cases are 10 and 1 day old: in no roll rate yet
    assert {r.whole for r in f.total.roll_rates["1-30"].values()} == {18}
    assert [(s.stage, s.loans) for s in f.funnel] == [
        ("REMINDER", 10), ("PAID", 11), ("WRITTEN_OFF", 1)]
    assert (f.attention.open_tasks, f.attention.overdue_tasks) == (1, 1)
    assert f.model_dump(by_alias=True)["schema"] == "duecourse.portfolio-analytics/1"
    # the five calls in doubt may have been made and charged: they count, at 0.60 each
    costs = f.total.costs
    assert (costs.contacts, costs.contacts_by_channel) == (
        76, {"email": 10, "sms": 51, "voice": 15})
    assert costs.cost == Decimal("14.65")
    # per USD recovered: only the USD cases' 11.65 (the GBP calls bought no USD)
    assert costs.cost_per_unit_recovered == Decimal("0.0010")  # 11.65 / 12250.00
    gbp_group = _group(f, "standard@1")
    assert (gbp_group.costs.cost, gbp_group.costs.cost_per_unit_recovered) == (
        Decimal("3.00"), None)
    rpc = gbp_group.right_party_contact_rate
    assert (rpc.part, rpc.whole) == (0, 5)


async def test_challenger_against_champion_with_intervals_and_verdict(book: Ledger) -> None:
    f = await compute(book.engine, costs=COSTS, now=NOW)
    (c,) = f.comparisons
    assert (c.experiment, c.champion, c.challenger) == ("demo-ab", "champion", "challenger")
    assert (f.horizon_days, c.champion_cases, c.challenger_cases) == (90, 10, 10)
    d = {x.metric: x for x in c.differences}
    # per-loan recovered shares; all loans are 1000.00, so the ratio estimator's standard
    # error is that of the mean share
    share_a = [1, 1, 1, 1, .5, .5, 0, 0, 0, 0]
    share_b = [1, 1, 1, 1, 1, 1, .25, 0, 1, 0]
    se = sqrt(statistics.variance(share_a) / 10 + statistics.variance(share_b) / 10)
    rec = d["recovery_rate"]
    assert (rec.champion, rec.challenger) == (0.5, 0.725)
    assert rec.difference == pytest.approx(0.225)
    assert (rec.ci_low, rec.ci_high) == pytest.approx((0.225 - 1.96 * se, 0.225 + 1.96 * se),
                                                      abs=1e-3)
    assert not rec.significant
    cure = d["cure_rate"]
    newcombe = stats.proportion_difference(4, 10, 7, 10)
    assert newcombe is not None
    assert (cure.difference, cure.ci_low, cure.ci_high) == pytest.approx(
        (0.3, newcombe.low, newcombe.high))
    contacts = d["contacts_per_loan"]
    assert (contacts.champion, contacts.challenger) == pytest.approx((4.1, 3.0))
    assert (contacts.ci_low, contacts.ci_high) == pytest.approx((-1.1 - 1.96 * 0.1,
                                                                 -1.1 + 1.96 * 0.1), abs=1e-3)
    assert contacts.significant and contacts.relative == pytest.approx(-1.1 / 4.1)
    assert c.verdict == (
        "challenger against champion in the first 90 days after hand-over: recovers 22.5 "
        "percentage points more of the amount handed over (72.5% against 50.0%, 95% CI "
        "-17.8 to 62.8 points, not significant), "
        "with 27% fewer contacts per loan (3.0 against 4.1); cures 30.0 points higher "
        f"(70.0% against 40.0%, 95% CI {newcombe.low * 100:.1f} to {newcombe.high * 100:.1f} "
        "points, not significant).")


async def test_grouping_by_segment_jurisdiction_and_agent(book: Ledger) -> None:
    seg = await compute(book.engine, by="segment", costs=COSTS, now=NOW)
    assert {g.key: g.cases for g in seg.groups} == {"self_cure": 5, "cant_pay": 5,
                                                     "unscored": 12}
    assert _group(seg, "self_cure").cure_rate.value == 0.8
    assert seg.comparisons == []  # comparisons are between strategies
    where = await compute(book.engine, by="jurisdiction", costs=COSTS, now=NOW)
    assert {g.key: g.cases for g in where.groups} == {"US": 20, "GB": 2}
    who = await compute(book.engine, by="agent", costs=COSTS, now=NOW)
    assert {g.key: g.cases for g in who.groups} == {"agent-9": 1, "agent-7": 2, "none": 19}


async def test_since_keeps_only_cases_opened_from_that_day(book: Ledger) -> None:
    f = await compute(book.engine, since=(NOW - timedelta(days=10)).date(), costs=COSTS,
                      now=NOW)
    assert [g.key for g in f.groups] == ["standard@1"] and f.total.cases == 2


async def test_an_empty_ledger_gives_rates_without_values(tmp_path: Path) -> None:
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    await migrate(engine)
    try:
        f = await compute(engine, costs=COSTS, now=NOW)
    finally:
        await engine.dispose()
    assert f.groups == [] and f.comparisons == [] and f.funnel == []
    total = f.total
    assert (total.cases, total.recovery) == (0, [])
    for r in (total.cure_rate, total.promise_kept_rate, total.plan_completion_rate,
              total.right_party_contact_rate, *total.cure_rate_by_bucket.values(),
              *total.roll_rates["1-30"].values()):
        assert (r.part, r.whole, r.value) == (0, 0, None)
    assert total.costs.cost_per_cure is None and total.costs.contacts_per_cure is None


def test_newcombe_and_wilson_match_the_published_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857 and 17:873: 81/263 (Wilson
    # 0.2553-0.3662) and 56/70 against 48/80 (method 10: 0.0524 to 0.3339)
    assert stats.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    diff = stats.proportion_difference(48, 80, 56, 70)
    assert diff is not None
    assert (diff.estimate, diff.low, diff.high) == pytest.approx((0.2, 0.0524, 0.3339),
                                                                 abs=1e-4)
    assert stats.proportion_difference(0, 0, 1, 2) is None
    assert stats.mean_difference([1.0], [1.0, 2.0]) is None


async def test_an_experiment_in_two_currencies_is_judged_on_the_most_common(
        tmp_path: Path) -> None:
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'two.db'}")
    await migrate(engine)
    ledger = Ledger(engine)
    try:
        for n in range(3):
            await write(ledger, Spec(n=n, arm="champion", paid=[(5, "500.00")]))
            await write(ledger, Spec(n=n, arm="challenger", paid=[(5, "1000.00")]))
        for n in range(3, 5):
            await write(ledger, Spec(n=n, arm="champion", currency="GBP", amount="200.00"))
        f = await compute(engine, costs=COSTS, now=NOW, horizon_days=5)
    finally:
        await engine.dispose()
    (c,) = f.comparisons
    assert [d.metric for d in c.differences] == [
        "recovery_rate:USD", "recovery_rate:GBP", "cure_rate", "contacts_per_loan"]
    gbp = c.differences[1]
    assert (gbp.champion, gbp.challenger, gbp.ci_low) == (0.0, None, None)
    assert c.verdict.startswith("challenger against champion in the first 5 days after "
                                "hand-over: recovers 50.0 percentage points more of the "
                                "amount handed over in USD (100.0% against 50.0%")


async def test_segment_quality_judges_each_scorer_that_can_be_loaded(
        book: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report says how well the scorecard's segments predict cure; a learned scorer
    without its model file is left out instead of failing the report."""
    monkeypatch.delenv("DUECOURSE_SCORER_MODEL", raising=False)
    learned = "duecourse.lab.learned_scorer:learned"
    f = await compute(book.engine, costs=COSTS, now=NOW, scorers=scorers_for(learned))
    assert [q.scorer for q in f.segment_quality] == [SCORECARD]
    [quality] = f.segment_quality
    # the 20 experiment cases' cure within 90 days is known (the GBP ones are too young):
    # the 18 at DPD 5 score self_cure (champion #0-3 and challenger #0-5 cured), the two
    # at DPD 40 cant_pay (#8 paid on day 40, #9 was written off)
    assert _rates(quality.cure_rate_by_segment) == {"self_cure": (10, 18), "cant_pay": (1, 2)}
    assert {k: r.whole for k, r in quality.cure_rate_by_segment.items()} == {
        "self_cure": 18, "cant_pay": 2, "wont_pay": 0, "unreachable": 0}


async def test_segment_quality_keeps_to_the_scope(book: Ledger) -> None:
    """`since` scopes segment quality like every other figure: from ten days ago only the
    two young GBP cases are in scope, and neither's cure within 90 days is known yet."""
    f = await compute(book.engine, since=(NOW - timedelta(days=10)).date(), costs=COSTS,
                      now=NOW, scorers=(SCORECARD,))
    [quality] = f.segment_quality
    assert {r.whole for r in quality.cure_rate_by_segment.values()} == {0}
    assert quality.auc is None


def _arm(n: int, arm: str, experiment: str = "demo-ab", **kwargs: Any) -> Spec:
    return Spec(n=n, arm=arm, experiment=experiment, **{"contacts": ["sms"], **kwargs})


async def _experiment_figures(tmp_path: Path, extra: list[Spec], **kwargs: Any
                              ) -> PortfolioFigures:
    """demo-ab handed over 100 days ago, the ledger seen to day 99: champion #0-1 pay in
    full on day 10, #2 on day 95 (after the horizon), #3 nothing; challenger #0-2 pay in
    full on day 10, #3 nothing, #4 is cancelled on day 50. One SMS each."""
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / f'exp{len(extra)}.db'}")
    await migrate(engine)
    ledger = Ledger(engine)
    full = [(10, "1000.00")]
    specs = [_arm(0, "champion", paid=full, close=(10, "PAID")),
             _arm(1, "champion", paid=full, close=(10, "PAID")),
             _arm(2, "champion", paid=[(95, "1000.00")], close=(95, "PAID")),
             _arm(3, "champion", entries=[_event("late", 99, "contact_skipped")]),
             *[_arm(n, "challenger", paid=full, close=(10, "PAID")) for n in range(3)],
             _arm(3, "challenger"), _arm(4, "challenger", close=(50, "CANCELLED")), *extra]
    try:
        for spec in specs:
            await write(ledger, spec)
        return await compute(engine, costs=COSTS, now=NOW, **kwargs)
    finally:
        await engine.dispose()


async def test_arms_are_compared_within_the_horizon_and_young_cases_wait(
        tmp_path: Path) -> None:
    """A case younger than the horizon has had less time to pay: it is in its group's
    figures but not in the comparison, so it cannot move it."""
    before = await _experiment_figures(tmp_path, [])
    young = _arm(9, "champion", opened=NOW - timedelta(days=20), contacts=["sms"] * 5)
    after = await _experiment_figures(tmp_path, [young])
    assert _group(after, "demo-ab/champion").cases == 5  # counted in the group's figures
    (c,) = after.comparisons
    assert c == before.comparisons[0]
    assert (c.champion_cases, c.challenger_cases, after.horizon_days) == (4, 5, 90)
    d = {x.metric: x for x in c.differences}
    # champion #2 paid on day 95: after the horizon, so neither recovered nor cured in it
    assert (d["recovery_rate"].champion, d["recovery_rate"].challenger) == (0.5, 0.6)
    # the cancelled challenger is no cure and no failure: 3 of 4, against 2 of 4
    assert (d["cure_rate"].champion, d["cure_rate"].challenger) == (0.5, 0.75)
    assert (d["contacts_per_loan"].champion, d["contacts_per_loan"].challenger) == (1.0, 1.0)
    assert c.verdict.startswith("challenger against champion in the first 90 days after "
                                "hand-over: recovers 10.0 percentage points more")
    # the groups count every case to the ledger's end, CANCELLED ones out of cure
    champion = _group(before, "demo-ab/champion")
    assert (champion.recovery[0].rate, champion.cure_rate.part) == (0.75, 3)
    cure = _group(before, "demo-ab/challenger").cure_rate
    assert (cure.part, cure.whole) == (3, 4)
    # a longer horizon takes in champion #2's payment on day 95
    longer = await _experiment_figures(tmp_path, [young], horizon_days=95)
    (c95,) = longer.comparisons
    assert (c95.champion_cases, c95.differences[0].champion) == (4, 0.75)
    assert "in the first 95 days after hand-over" in c95.verdict


async def test_arms_of_different_experiments_are_different_groups(tmp_path: Path) -> None:
    """Two experiments' "champion" arms are not one strategy, and each challenger is
    compared with its own experiment's champion."""
    other = [_arm(0, "champion", "other-ab"), _arm(1, "champion", "other-ab"),
             _arm(0, "challenger", "other-ab", paid=[(5, "1000.00")], close=(5, "PAID")),
             _arm(1, "challenger", "other-ab")]
    alone = await _experiment_figures(tmp_path, [])
    f = await _experiment_figures(tmp_path, other)
    assert {g.key: g.cases for g in f.groups} == {
        "demo-ab/challenger": 5, "demo-ab/champion": 4, "other-ab/challenger": 2,
        "other-ab/champion": 2}
    demo, mixed = f.comparisons
    assert [(c.experiment, c.champion_cases, c.challenger_cases) for c in f.comparisons] == [
        ("demo-ab", 4, 5), ("other-ab", 2, 2)]
    assert demo == alone.comparisons[0]  # other-ab's arms do not move demo-ab's
    assert {d.metric: d.challenger for d in mixed.differences}["cure_rate"] == 0.5


async def test_right_party_contact_is_of_our_attempts_and_never_above_one(
        tmp_path: Path) -> None:
    """A call not answered, a visit that reached the borrower, a guarantor an agent
    reached without asking first and three replies by text: 2 of 3 attempts reached the
    person who owes; the replies are counted apart (they used to make this 5 of 4)."""
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'rpc.db'}")
    await migrate(engine)
    ledger = Ledger(engine)
    visit = ContactLogged(key="visit", occurred_at=OPENED + timedelta(days=2), actor=AGENT,
                          stage="REMINDER", step="agent-contact", channel="visit",
                          recipient="1 Main St", recipient_kind="debtor", purpose="collection")
    replies = [_event(f"reply{i}", 3, "contact_outcome", channel="sms",
                      result="borrower_replied", recipient_kind="debtor") for i in range(3)]
    entries = [visit, *replies,
               _event("call", 3, "contact_outcome", channel="voice", result="no_answer",
                      recipient_kind="debtor"),
               _event("seen", 3, "contact_outcome", AGENT, channel="visit", result="reached",
                      recipient_kind="debtor"),
               _event("again", 4, "contact_outcome", AGENT, channel="visit",
                      result="reached", recipient_kind="guarantor", address="+12025550111")]
    try:
        await write(ledger, Spec(n=0, arm=None, contacts=["sms", "sms", "voice"],
                                 entries=entries))
        f = await compute(engine, costs=COSTS, now=NOW)
    finally:
        await engine.dispose()
    rpc = f.total.right_party_contact_rate
    assert (rpc.part, rpc.whole) == (2, 3) and f.total.inbound_replies == 3
    assert f.total.costs.contacts == 4  # 2 SMS, the call and the visit


async def test_a_horizon_that_is_no_number_of_days_is_refused(tmp_path: Path) -> None:
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    await migrate(engine)
    try:
        with pytest.raises(ValueError, match="horizon_days must be a whole number of days, "
                                             "at least 1, not 0"):
            await compute(engine, costs=COSTS, now=NOW, horizon_days=0)
    finally:
        await engine.dispose()


def test_the_champion_is_read_from_a_file_whose_policies_live_elsewhere(
        tmp_path: Path) -> None:
    """A challenger on the lender's own policy (not bundled, not in a directory the report
    knows) still names the file's champion: the comparison is not silently dropped."""
    (tmp_path / "ab2.yaml").write_text(
        "name: ab2\nchampion: {name: std, policy: standard, share: '0.5'}\n"
        "challengers:\n  - {name: kind, policy: lenders-own-kind, share: '0.5'}\n")
    assert champion_of("ab2", ["std", "kind"], str(tmp_path)) == "std"
    assert champion_of("gone", ["std", "kind"], str(tmp_path)) is None
    assert champion_of("gone", ["champion", "kind"], str(tmp_path)) == "champion"

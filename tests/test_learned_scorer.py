"""The learned scorer on real ledgers: trained on cases where cure is decided by promises
broken (with days past due and conversations as noise), it must find that feature with
the right sign, rank held-out cases well, explain every score, train from the CLI, score
a live hand-over through the worker, and say which setting to fix when its model is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from duecourse.domain.actor import SYSTEM
from duecourse.domain.entries import (
    EventRecorded,
    PaymentRecorded,
    PromiseRecorded,
    StageChanged,
)
from duecourse.domain.policy import Segment
from duecourse.domain.scoring import ScoreInput
from duecourse.lab import learned_scorer
from duecourse.lab.learned_scorer import Cutoffs, ScorerModelError, apply_model, load_model
from duecourse.lab.segment_quality import auc, segment_quality
from duecourse.lab.training import TrainingError, observations, train
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.ledger import ContactRecord
from duecourse.temporal.contracts import OpenLoan, RecordEntries
from tests.factories import AGENT, make_loan
from tests.test_workflow_faults import rig
from tests.test_workflow_negotiation import STANDARD

LEARNED = "duecourse.lab.learned_scorer:learned"
BASE = datetime.fromisoformat("2026-03-02T02:00:00+00:00")


def facts(**given: Any) -> ScoreInput:
    base: dict[str, Any] = dict(
        loan_id="L-1", days_past_due=5, outstanding_ratio=Decimal("1.00"), payments=0,
        paid_amount_ratio=Decimal("0.00"), promises_kept=0, promises_broken=0,
        plans_broken=0, conversations=0, refusals=0, failed_attempts_in_a_row=0,
        invalid_contact=False, disputed=False)
    return ScoreInput(**{**base, **given})


async def _case(ledger: Ledger, rng: random.Random, n: int, broken: int | None = None,
                cured: bool | None = None) -> tuple[str, int, bool]:
    """One closed case: cured with 95% chance when no promise was broken and 5% when
    `broken` were (random: none for most loans handed over early, 1-3 for most late
    ones, so days past due at hand-over hints at what follows); conversations are noise.
    Ability follows the balance: a cured loan with 40% of its principal left is mostly
    paid in full, one with all of it left mostly settled; some that fail pay a part."""
    dpd = rng.randint(1, 60)
    if broken is None:
        keeps = rng.random() < (0.8 if dpd <= 30 else 0.35)
        broken = 0 if keeps else rng.randint(1, 3)
    chance = rng.random() < (0.95 if broken == 0 else 0.05)
    cured = chance if cured is None else cured
    opened = BASE + timedelta(hours=n)
    owed = Decimal("400.00") if rng.random() < 0.5 else Decimal("1000.00")
    loan = make_loan(opened, dpd=dpd, outstanding=str(owed)).model_copy(
        update={"principal": Decimal("1000.00")})
    case_id = f"case-{n}-{loan.loan_id}"
    await ledger.open_case(OpenLoan(case_id=case_id, workflow_id=loan.workflow_id, loan=loan,
                                    policy="standard@1", opened_at=opened))
    entries: list[Any] = [StageChanged(key="stage:1", occurred_at=opened, actor=SYSTEM,
                                       from_stage=None, to_stage="REMINDER",
                                       reason="handed over", days_past_due=5)]
    for k in range(rng.randint(0, 2)):
        entries.append(EventRecorded(
            key=f"event:talk{k}", occurred_at=opened + timedelta(days=1, hours=k),
            actor=AGENT, event="contact_outcome",
            details={"channel": "voice", "result": "reached", "recipient_kind": "debtor"}))
    for k in range(broken):
        made = opened + timedelta(days=2 + 3 * k)
        for status, at in (("ACTIVE", made), ("BROKEN", made + timedelta(days=2))):
            entries.append(PromiseRecorded(
                key=f"promise:{k}:{status}", occurred_at=at, actor=AGENT, promise_id=f"P{k}",
                amount=Decimal("500.00"), currency="CNY",
                due_date=(made + timedelta(days=1)).date(), status=status))
    end = opened + timedelta(days=30 if cured else 60)
    in_full = cured and rng.random() < (0.85 if owed < 1000 else 0.25)
    outcome = "PAID" if in_full else "SETTLED" if cured else "WRITTEN_OFF"
    share = {"PAID": Decimal(1), "SETTLED": Decimal("0.6")}.get(
        outcome, Decimal("0.2") if rng.random() < 0.3 else Decimal(0))
    if share:
        at = end if cured else end - timedelta(days=20)
        paid = (owed * share).quantize(Decimal("0.01"))
        entries.append(PaymentRecorded(
            key="payment:1", occurred_at=at, actor=SYSTEM, reference=f"R-{n}",
            amount=paid, currency="CNY", paid_at=at, applied=paid,
            overpaid=Decimal("0.00"), outstanding_after=owed - paid))
    entries.append(StageChanged(key="closed", occurred_at=end, actor=SYSTEM,
                                from_stage="REMINDER", to_stage=None, outcome=outcome,
                                reason="closed", days_past_due=40))
    await ledger.record_entries(RecordEntries(case_id=case_id, workflow_id=loan.workflow_id,
                                              loan_id=loan.loan_id, entries=entries))
    return case_id, broken, cured


async def portfolio(ledger: Ledger, cases: int = 160) -> None:
    rng = random.Random(20260302)
    for n in range(cases):
        await _case(ledger, rng, n)


async def trained_model(ledger: Ledger, path: Path) -> Path:
    await portfolio(ledger)
    result = await train(ledger.engine, "test ledger")
    await asyncio.to_thread(path.write_text, result.model.model_dump_json(by_alias=True),
                            encoding="utf-8")
    return path


async def test_the_ledger_is_replayed_into_the_scorers_facts(ledger: Ledger) -> None:
    """Without the replay every observation would be the hand-over's empty facts."""
    rng = random.Random(1)
    case_id, broken, _ = await _case(ledger, rng, 0, broken=2, cured=True)
    seen = [o for o in await observations(ledger.engine) if o.case_id == case_id]
    assert seen[0].handover and seen[0].facts.promises_broken == 0
    assert [o.facts.promises_broken for o in seen][-1] == broken == 2
    assert seen[-1].facts.days_past_due > seen[0].facts.days_past_due
    talks = max(o.facts.conversations for o in seen)
    assert talks == sum(1 for o in seen[1:] if o.facts.promises_broken == 0)
    [case] = await ledger.rows(t.collection_cases, case_id=case_id)
    assert seen[-1].at < case["closed_at"]  # the closing payment itself teaches nothing
    assert [o.handover for o in await observations(ledger.engine, handover_only=True)] == \
        [True]


async def test_training_finds_what_decides_cure_and_every_score_says_why(
        ledger: Ledger) -> None:
    await portfolio(ledger)
    result = await train(ledger.engine, "test ledger", random_state=3)
    model = result.model
    top, coefficient = result.top[0]
    assert top == "promises_broken" and coefficient < 0, result.top
    assert model.cure.auc is not None and model.cure.auc > 0.7, model.cure.auc
    assert model.willingness is not None and model.held_out_cases > 0
    assert model.ability is not None and model.ability.auc is not None
    assert model.ability.rows < model.cure.rows  # only where a payment followed
    weightiest = max(zip(model.features, model.ability.coefficients, strict=True),
                     key=lambda item: abs(item[1]))
    assert weightiest[0] == "outstanding_ratio" and weightiest[1] < 0, weightiest
    again = await train(ledger.engine, "test ledger", random_state=3)
    assert again.model.cure == model.cure  # a fixed random_state: the same model

    # the file holds every number scoring needs, as JSON a person can read
    text = model.model_dump_json(by_alias=True)
    assert json.loads(text)["schema"] == "duecourse.learned-scorer/1"
    doomed = apply_model(model, facts(promises_broken=2))
    hopeful = apply_model(model, facts())
    assert doomed.score < hopeful.score
    assert doomed.reasons[0] == "2 promise(s) broken lowers the chance of cure " \
        f"({coefficient * (2 - model.means[5]) / model.scales[5]:+.2f})"
    assert doomed.segment in (Segment.CANT_PAY, Segment.WONT_PAY)
    assert "cure chance" in doomed.reasons[-1]
    assert len(hopeful.reasons) == 4  # three facts and why the segment follows
    unwilling = {"self_cure": 1.0, "willing": 1.0}
    for able, segment in ((0.0, Segment.WONT_PAY), (1.0, Segment.CANT_PAY)):
        cut = Cutoffs(**unwilling, able=able)
        result = apply_model(model.model_copy(update={"cutoffs": cut}), facts())
        assert result.segment is segment and "ability" in result.reasons[-1], result
    eager = model.model_copy(update={"cutoffs": Cutoffs(self_cure=0.01)})
    assert apply_model(eager, facts()).segment is Segment.SELF_CURE
    assert apply_model(eager, facts(invalid_contact=True)).segment is Segment.UNREACHABLE

    learned = await segment_quality(ledger.engine, "duecourse.domain.scoring:scorecard")
    assert sum(r.whole for r in learned.cure_rate_by_segment.values()) == 160
    assert set(learned.cure_rate_by_segment) == {s.value for s in Segment}


async def test_calls_nobody_answers_are_replayed_as_the_collection_counts_them(
        ledger: Ledger) -> None:
    """Delivered calls completed by their outcomes: two unanswered, then a wrong number
    (without the replay through apply_outcome none of them would count)."""
    opened = BASE
    loan = make_loan(opened, dpd=10)
    case_id = f"case-calls-{loan.loan_id}"
    await ledger.open_case(OpenLoan(case_id=case_id, workflow_id=loan.workflow_id, loan=loan,
                                    policy="standard@1", opened_at=opened))
    entries: list[Any] = []
    for k, result in enumerate(("no_answer", "busy", "wrong_number")):
        at = opened + timedelta(days=k + 1)
        await ledger.record_contact(ContactRecord(
            idempotency_key=f"{case_id}:contact:1:call{k}", case_id=case_id,
            loan_id=loan.loan_id, stage="REMINDER", step=f"call{k}", channel="voice",
            template="call", language="zh-CN", recipient=loan.borrower.phones[0],
            subject=None, body="call", status="sent", provider_message_id=None,
            scheduled_for=at, attempted_at=at))
        entries.append(EventRecorded(
            key=f"event:call{k}", occurred_at=at + timedelta(minutes=5), actor=AGENT,
            event="contact_outcome",
            details={"channel": "voice", "result": result, "recipient_kind": "debtor"}))
    entries.append(StageChanged(key="closed", occurred_at=opened + timedelta(days=60),
                                actor=SYSTEM, from_stage="REMINDER", to_stage=None,
                                outcome="WRITTEN_OFF", reason="closed", days_past_due=70))
    await ledger.record_entries(RecordEntries(case_id=case_id, workflow_id=loan.workflow_id,
                                              loan_id=loan.loan_id, entries=entries))
    seen = await observations(ledger.engine)
    assert [(o.facts.failed_attempts_in_a_row, o.facts.invalid_contact) for o in seen] == \
        [(0, False), (1, False), (2, False), (3, True)]
    assert not any(o.cured or o.willing for o in seen)


async def test_cure_is_judged_within_the_horizon(ledger: Ledger) -> None:
    """A case open past the horizon has not cured (it is the portfolio's hardest, not
    one to leave out); one open for less is not known yet; a payment after the horizon
    is no cure; a cancelled case says nothing. Without the horizon the ledger would
    seem to cure everyone who ever closed."""
    async def case(name: str, opened: datetime, entries: list[Any],
                   outcome: str | None = None, closed: datetime | None = None) -> str:
        loan = make_loan(opened, dpd=10)
        case_id = f"case-{name}-{loan.loan_id}"
        await ledger.open_case(OpenLoan(case_id=case_id, workflow_id=loan.workflow_id,
                                        loan=loan, policy="standard@1", opened_at=opened))
        if outcome is not None and closed is not None:
            entries = [*entries, StageChanged(
                key="closed", occurred_at=closed, actor=SYSTEM, from_stage="REMINDER",
                to_stage=None, outcome=outcome, reason="closed", days_past_due=99)]
        await ledger.record_entries(RecordEntries(
            case_id=case_id, workflow_id=loan.workflow_id, loan_id=loan.loan_id,
            entries=[StageChanged(key="stage:1", occurred_at=opened, actor=SYSTEM,
                                  from_stage=None, to_stage="REMINDER", reason="handed over",
                                  days_past_due=10), *entries]))
        return case_id

    def talk(day: int) -> EventRecorded:
        return EventRecorded(key=f"event:talk{day}", occurred_at=BASE + timedelta(days=day),
                             actor=AGENT, event="contact_outcome",
                             details={"channel": "voice", "result": "reached"})

    late = BASE + timedelta(days=95)
    stuck = await case("stuck", BASE, [talk(10), talk(100)])
    await case("young", late, [talk(96)])
    paid_late = await case("paid-late", BASE, [PaymentRecorded(
        key="payment:1", occurred_at=late, actor=SYSTEM, reference="R-late",
        amount=Decimal("1000.00"), currency="CNY", paid_at=late, applied=Decimal("1000.00"),
        overpaid=Decimal("0.00"), outstanding_after=Decimal("0.00"))], "PAID", late)
    await case("cancelled", BASE, [], "CANCELLED", BASE + timedelta(days=5))
    seen = await observations(ledger.engine, horizon_days=90)
    assert {o.case_id for o in seen} == {stuck, paid_late}
    assert not any(o.cured or o.willing or o.able is not None for o in seen)
    assert [o.facts.conversations for o in seen if o.case_id == stuck] == [0, 1]
    assert [o.case_id for o in await observations(ledger.engine, horizon_days=120)] == \
        [paid_late]  # stuck is 100 days old: not known at 120; paid_late cured
    cured = [o for o in await observations(ledger.engine, horizon_days=120) if o.cured]
    assert cured and cured[0].able is True


def test_auc_counts_ties_half_and_needs_both_kinds() -> None:
    assert auc([0.9, 0.1], [True, False]) == 1.0
    assert auc([0.1, 0.9], [True, False]) == 0.0
    assert auc([0.5, 0.5, 0.5], [True, False, False]) == 0.5
    assert auc([0.2, 0.4, 0.4, 0.8], [False, True, False, True]) == 0.875
    assert auc([0.3], [True]) is None


async def test_a_small_or_one_sided_ledger_is_refused_in_a_sentence(ledger: Ledger) -> None:
    rng = random.Random(2)
    for n in range(3):
        await _case(ledger, rng, n)
    with pytest.raises(TrainingError, match="3 case"):
        await train(ledger.engine, "test ledger")


async def _cli(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={
            **os.environ, "COLUMNS": "250", "NO_COLOR": "1",
            "DUECOURSE_DATA_DIR": str(tmp_path / "nowhere"), **env})
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_cli_trains_a_model_the_scorer_reads(ledger: Ledger, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    await portfolio(ledger)
    db = ledger.engine.url.database
    assert db is not None
    out = tmp_path / "models" / "scorer.json"
    code, text, err = await _cli(tmp_path, "scorer", "train", "--ledger", db, "--out",
                                 str(out))
    assert code == 0, err
    assert "observations of 160 cases" in text and "cure AUC" in text, text
    assert text.index("promises_broken") < text.index("Model written"), text
    monkeypatch.setenv("DUECOURSE_SCORER_MODEL", str(out))
    result = learned_scorer.learned(facts(promises_broken=2))
    assert "promise(s) broken lowers the chance of cure" in result.reasons[0]
    quality = await segment_quality(ledger.engine, LEARNED)
    assert quality.auc is not None and quality.auc > 0.5

    code, text, err = await _cli(tmp_path, "scorer", "train", "--ledger", db, "--out",
                                 str(out), "--json", "--random-state", "3",
                                 "--self-cure-at", "0.6")
    assert code == 0, err
    assert load_model(out).cutoffs.self_cure == 0.6
    summary = json.loads(text)
    assert summary["cases"] == 160 and summary["cure_auc"] > 0.7, summary
    assert summary["top"][0]["feature"] == "promises_broken"
    code, _, err = await _cli(tmp_path, "scorer", "train", "--ledger",
                              str(tmp_path / "absent.db"), "--out", str(out))
    assert code == 1 and "--ledger" in err and "no ledger file there" in err, err


def test_a_missing_or_broken_model_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ScorerModelError, match="DUECOURSE_SCORER_MODEL is not set"):
        load_model(None)
    with pytest.raises(ScorerModelError, match=r"DUECOURSE_SCORER_MODEL names .*does not "
                       r"exist: train one with `duecourse scorer train --out "):
        load_model(tmp_path / "gone.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ScorerModelError, match=r"DUECOURSE_SCORER_MODEL names .*not JSON"):
        load_model(broken)
    broken.write_text(json.dumps({"schema": "duecourse.learned-scorer/1"}),
                      encoding="utf-8")
    with pytest.raises(ScorerModelError, match=r"DUECOURSE_SCORER_MODEL names .*, "
                       r"which is not a learned scorer model: .*features"):
        load_model(broken)


async def test_a_hand_over_is_scored_by_the_learned_model(
        ts_env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """DUECOURSE_SCORER names the learned scorer: the worker's hand-over uses the model
    and the ledger shows its reasons."""
    path = await trained_model(ledger, tmp_path / "scorer.json")
    monkeypatch.setenv("DUECOURSE_SCORER_MODEL", str(path))
    async with rig(ts_env, ledger, scorer=LEARNED) as r:
        loan = make_loan(await ts_env.get_current_time(), dpd=3)
        await r.client.start(loan, STANDARD)
        await r.settle(loan.loan_id)
        status = await r.client.status(loan.loan_id)
        events = [e for e in await r.rows(t.audit_events, loan_id=loan.loan_id)
                  if e["kind"] in ("segment_changed", "scoring_failed")]
    expected = apply_model(load_model(path), facts(loan_id=loan.loan_id, days_past_due=3))
    assert status.segment == expected.segment.value
    assert [e["kind"] for e in events] == ["segment_changed"], events
    details = events[0]["data"]["details"]
    assert details["score"] == expected.score and details["reasons"] == expected.reasons
    assert any("chance of cure" in reason for reason in details["reasons"])


async def test_a_hand_over_without_its_model_says_which_setting(
        ts_env: WorkflowEnvironment, ledger: Ledger, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The loan goes on unscored (a setting to fix is not retried) and the ledger says
    what to fix."""
    monkeypatch.setenv("DUECOURSE_SCORER_MODEL", str(tmp_path / "never-trained.json"))
    async with rig(ts_env, ledger, scorer=LEARNED) as r:
        loan = make_loan(await ts_env.get_current_time(), dpd=3)
        await r.client.start(loan, STANDARD)
        await r.settle(loan.loan_id)
        failed = [e for e in await r.rows(t.audit_events, loan_id=loan.loan_id)
                  if e["kind"] == "scoring_failed"]
    assert failed, "the hand-over should record that scoring failed"
    assert "DUECOURSE_SCORER_MODEL names" in failed[0]["data"]["details"]["detail"]

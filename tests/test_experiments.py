"""Champion/challenger experiments (issue 14 item 3): files checked with the field named,
a stable hash that respects the shares, assignments the ledger keeps when an experiment is
re-weighted or stopped, and a live hand-over that records the arm on the case and as the
Strategy search attribute and runs on the arm's policy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from typer.testing import CliRunner

from duecourse import handover
from duecourse import search_attributes as sa
from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.cli.app import app
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Policy
from duecourse.intake import IntakeRow, parse_records
from duecourse.lab.analytics import compute
from duecourse.lab.assignments import (
    assign_at_hand_over,
    assigned_counts,
    enrolment,
    start_choice,
)
from duecourse.lab.experiments import (
    BUILTIN_DIR,
    Experiment,
    ExperimentError,
    hash_point,
    load_experiment,
)
from duecourse.policies import BUILTIN_DIR as POLICIES
from duecourse.policies import load_policy
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import StartOutcome
from duecourse.temporal.contracts import CollectionInput, OpenLoan, StrategyChoice
from tests.conftest import Harness, TrackingClient, settings_for_tests
from tests.factories import make_loan


def experiment(shares: tuple[str, ...] = ("0.5", "0.5"), status: str = "running",
               name: str = "ab") -> Experiment:
    arms = [{"name": f"arm{i}", "policy": "standard", "share": s}
            for i, s in enumerate(shares)]
    return Experiment.model_validate({"name": name, "status": status, "champion": arms[0],
                                      "challengers": arms[1:]})


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


ARMS = """champion: {name: champion, policy: standard, share: "0.5"}
challengers:
  - {name: gentle, policy: standard, share: "0.5"}
"""


# --------------------------------------------------------------------------- the hash
def test_the_bundled_demo_ab_is_standard_against_another_policy_half_and_half() -> None:
    demo = load_experiment("demo-ab")
    assert (demo.name, demo.status, demo.champion.policy) == ("demo-ab", "running", "standard")
    assert [arm.share for arm in demo.arms] == [Decimal("0.5"), Decimal("0.5")]
    assert demo.challengers[0].policy != "standard"
    assert (BUILTIN_DIR / "demo-ab.yaml").is_file()


def test_the_hash_is_sha256_of_name_and_loan_id_and_never_changes() -> None:
    digest = hashlib.sha256(b"demo-ab:L-1001").digest()
    assert hash_point("demo-ab", "L-1001") == Fraction(int.from_bytes(digest[:8], "big"),
                                                       2 ** 64)
    demo = load_experiment("demo-ab")
    # fixed once (0: the champion, 1: the challenger): a change to the hash or to how
    # shares are laid out would move every live loan
    expected = {"L-1001": 0, "L-1002": 1, "L-1003": 0, "L-42": 0, "loan-7": 1, "L-0": 0}
    assert {loan: demo.arms.index(demo.assign(loan)) for loan in expected} == expected
    # the experiment's name is part of the hash: another experiment splits differently
    other = demo.model_copy(update={"name": "demo-ac"})
    assert [other.assign(f"L-{i}").name for i in range(40)] != \
        [demo.assign(f"L-{i}").name for i in range(40)]


def test_shares_are_respected_over_ten_thousand_loans() -> None:
    exp = experiment(("0.2", "0.3", "0.5", "0"))
    counts = Counter(exp.assign(f"L-{i:05d}").name for i in range(10_000))
    for arm in exp.arms:
        assert abs(counts[arm.name] / 10_000 - float(arm.share)) < 0.02, counts
    assert counts["arm3"] == 0  # a zero share gets nobody


def test_a_stopped_experiment_sends_new_loans_to_the_champion() -> None:
    stopped = experiment(("0.1", "0.9"), status="stopped")
    assert {stopped.assign(f"L-{i}").name for i in range(200)} == {"arm0"}


# --------------------------------------------------------------------------- bad files
@pytest.mark.parametrize(("text", "words"), [
    ("name: bad\nweighting: even\n" + ARMS,
     ["weighting is not a field of an experiment file"]),
    ("name: bad\nchampion: {name: champion, policy: standard, share: \"0.5\"}\n"
     "challengers:\n  - {name: gentle, policy: standard, shares: \"0.5\"}\n",
     ["challengers[0].shares is not a field of an arm"]),
    ("name: bad\nchampion: {name: champion, policy: standard, share: \"1.5\"}\n"
     "challengers:\n  - {name: gentle, policy: standard, share: \"0\"}\n",
     ["champion.share must be at most 1"]),
    ("name: bad\nchampion: {name: champion, policy: standard, share: 0.5}\n"
     "challengers:\n  - {name: gentle, policy: standard, share: 0.4}\n",
     ["shares must sum to 1", "they sum to 0.9", "challengers[0].share 0.4"]),
    ("name: bad\nchampion: {name: champion, policy: standard, share: \"0.5\"}\n"
     "challengers:\n  - {name: gentle, policy: kindness, share: \"0.5\"}\n",
     ["challengers[0].policy names 'kindness', which is not a policy"]),
    ("name: bad\nchampion: {name: champion, policy: standard, share: \"0.5\"}\n"
     "challengers:\n  - {name: champion, policy: standard, share: \"0.5\"}\n",
     ["each arm needs its own name", "champion"]),
    ("name: bad\nstatus: paused\n" + ARMS, ["status must be 'running' or 'stopped'"]),
    ("name: other\n" + ARMS, ["name is 'other', but the file is bad.yaml"]),
])
def test_a_bad_experiment_file_is_refused_with_the_field_named(
        tmp_path: Path, text: str, words: list[str]) -> None:
    write(tmp_path, "bad", text)
    with pytest.raises(ExperimentError) as refused:
        load_experiment("bad", str(tmp_path))
    message = str(refused.value)
    assert message.startswith(str(tmp_path / "bad.yaml")), message
    assert "\n" not in message and "pydantic" not in message, message
    for word in words:
        assert word in message, message


def test_an_unknown_experiment_names_the_ones_there_are(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"no experiment called 'nope'.*demo-ab"):
        load_experiment("nope", str(tmp_path))


def test_the_cli_checks_a_file_and_says_what_is_wrong(tmp_path: Path) -> None:
    good = write(tmp_path, "good", "name: good\n" + ARMS)
    bad = write(tmp_path, "bad", "name: bad\n" + ARMS.replace('share: "0.5"}\n',
                                                               'share: "0.4"}\n', 1))
    runner = CliRunner()
    ok = runner.invoke(app, ["experiment", "check", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "experiment good is valid (running): champion on standard (50%)" in ok.output
    refused = runner.invoke(app, ["experiment", "check", str(bad)])
    assert refused.exit_code == 1
    assert "the shares must sum to 1, but they sum to 0.9" in " ".join(refused.output.split())


# --------------------------------------------------------------------------- the ledger
async def open_case(ledger: Ledger, loan: LoanIntake, exp: str, arm: str, case: str,
                    at: datetime) -> None:
    await ledger.open_case(OpenLoan(
        case_id=case, workflow_id=loan.workflow_id, loan=loan, policy="standard@2026.11",
        opened_at=at, strategy=StrategyChoice(experiment=exp, strategy=arm)))


async def test_reweighting_or_stopping_never_moves_an_assigned_loan(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    before = experiment(("0.5", "0.5"))
    loans = [make_loan(now, dpd=3) for _ in range(40)]
    first = {loan.loan_id: await assign_at_hand_over(ledger.engine, before, loan.loan_id)
             for loan in loans}
    assert {arm.name for arm in first.values()} == {"arm0", "arm1"}
    for i, loan in enumerate(loans):
        await open_case(ledger, loan, "ab", first[loan.loan_id].name, f"case-{i}", now)
    everyone_to_arm0 = experiment(("1", "0"))
    stopped = experiment(("0.5", "0.5"), status="stopped")
    for changed in (everyone_to_arm0, stopped):
        again = {loan.loan_id: (await assign_at_hand_over(ledger.engine, changed,
                                                          loan.loan_id)).name
                 for loan in loans}
        assert again == {k: v.name for k, v in first.items()}  # nobody moved
        # a loan new to the experiment follows the file as it is now
        assert (await assign_at_hand_over(ledger.engine, changed, "L-new")).name == "arm0"
    # the arm recorded under another experiment does not count for this one
    on_arm1 = next(loan_id for loan_id, arm in first.items() if arm.name == "arm1")
    assert (await assign_at_hand_over(ledger.engine, experiment(("1", "0"), name="cd"),
                                      on_arm1)).name == "arm0"
    counts = await assigned_counts(ledger.engine, "ab")
    assert counts == dict(Counter(arm.name for arm in first.values()))


async def test_after_a_stop_new_loans_run_the_champion_outside_the_experiment(
        ledger: Ledger) -> None:
    """Stopped: a loan new to the experiment starts on the champion's policy but is not
    recorded as the champion arm (it would join an arm the hash never chose for it); a
    loan assigned before the stop keeps its arm."""
    now = datetime.now(UTC)
    running = experiment(("0", "1"))  # everyone new goes to arm1
    kept = make_loan(now, dpd=3)
    await open_case(ledger, kept, "ab", "arm1", "case-kept", now)
    stopped = experiment(("0", "1"), status="stopped")
    fresh = make_loan(now, dpd=3)
    rows = {loan.loan_id: unnamed_policy_row(loan, now, i)
            for i, loan in enumerate((kept, fresh), start=1)}
    choices = {}
    for loan_id, row in rows.items():
        assert row.loan is not None
        _, policy, strategy = await start_choice(
            ledger.engine, stopped, row, row.loan, load_policy("standard"), now=now,
            policy_dir=None, allow_demo=False)
        choices[loan_id] = (policy.name, strategy)
    assert choices[fresh.loan_id] == ("standard", None), "champion's policy, not enrolled"
    assert choices[kept.loan_id][1] == StrategyChoice(experiment="ab", strategy="arm1")
    _, enrolled = await enrolment(ledger.engine, running, fresh.loan_id)
    assert enrolled, "while it runs, a new loan is enrolled"


async def test_an_arm_removed_from_the_file_keeps_its_loans(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    loan = make_loan(now, dpd=3)
    await open_case(ledger, loan, "ab", "retired", "case-r", now)
    arm = await assign_at_hand_over(ledger.engine, experiment(), loan.loan_id)
    assert (arm.name, arm.policy) == ("retired", "standard")


async def test_experiment_show_counts_the_loans_per_arm(ledger: Ledger,
                                                        tmp_path: Path) -> None:
    now = datetime.now(UTC)
    for i, arm in enumerate(["champion", "gentle", "gentle"]):
        await open_case(ledger, make_loan(now, dpd=2), "counted", arm, f"c-{i}", now)
    path = write(tmp_path, "counted", "name: counted\n" + ARMS)
    url = str(ledger.engine.url)
    shown = await asyncio.to_thread(  # the command runs its own event loop
        CliRunner().invoke, app, ["experiment", "show", str(path), "--ledger", url, "--json"])
    assert shown.exit_code == 0, shown.output
    arms = {a["arm"]: a for a in json.loads(shown.output)["arms"]}
    assert (arms["champion"]["loans"], arms["gentle"]["loans"]) == (1, 2)
    assert arms["champion"]["role"] == "champion" and arms["gentle"]["share"] == "0.5"


# --------------------------------------------------------------------------- live
class ArmClient(TrackingClient):
    """The harness's tracking client, taking the experiment arm as the real one does."""

    async def start(self, loan: LoanIntake, policy: Policy, platform: str | None = None,
                    strategy: StrategyChoice | None = None) -> StartOutcome:
        self.started.append(loan.loan_id)
        return await super(TrackingClient, self).start(loan, policy, platform, strategy)


def gentle_policy(directory: Path) -> None:
    """A second real policy: the standard one with its courtesy call three days later."""
    text = (POLICIES / "standard.yaml").read_text(encoding="utf-8")
    text = text.replace("name: standard", "name: gentle", 1).replace(
        "offset: P7DT11H", "offset: P10DT11H", 1)
    (directory / "gentle.yaml").write_text(text, encoding="utf-8")


def unnamed_policy_row(loan: LoanIntake, now: datetime, row: int) -> IntakeRow:
    """The loan as a hand-over row that names no policy (the experiment decides)."""
    record: dict[str, Any] = loan.model_dump(mode="json", exclude={"policy"})
    return parse_records([(row, record)], now)[0]


async def test_a_live_hand_over_records_the_arm_and_runs_on_its_policy(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    policies, experiments = tmp_path / "policies", tmp_path / "experiments"
    policies.mkdir()
    experiments.mkdir()
    gentle_policy(policies)
    write(experiments, "live-ab", "name: live-ab\n" + ARMS.replace(
        "{name: gentle, policy: standard", "{name: gentle, policy: gentle"))
    settings = Settings(experiment="live-ab", experiment_dir=str(experiments),
                        policy_dir=str(policies))
    exp = handover.settings_experiment(settings)
    assert exp is not None
    now = await h.env.get_current_time()
    by_arm: dict[str, LoanIntake] = {}
    while len(by_arm) < 2:
        loan = make_loan(now, dpd=3)
        by_arm.setdefault(exp.assign(loan.loan_id).name, loan)
    named = make_loan(now, dpd=3, policy="standard")  # an explicit policy wins
    while exp.assign(named.loan_id).name != "gentle":
        named = make_loan(now, dpd=3, policy="standard")
    rows = [unnamed_policy_row(by_arm["champion"], now, 1),
            unnamed_policy_row(by_arm["gentle"], now, 2),
            IntakeRow(row=3, loan=named, error=None, loan_id=named.loan_id)]
    client = ArmClient(h.env, h.task_queue)
    try:
        summary = await handover.start_loans(client, rows, now=now, policy_dir=str(policies),
                                             ledger=h.ledger.engine, experiment=exp)
        assert not summary.rejected, summary.rejected
        assert {s.loan_id: s.policy.split("@")[0] for s in summary.started} == {
            by_arm["champion"].loan_id: "standard", by_arm["gentle"].loan_id: "gentle",
            named.loan_id: "standard"}
        for loan_id in client.started:
            await h.settle(loan_id)
        cases = {r["loan_id"]: r for r in await h.ledger.rows(t.collection_cases)}
        for arm, loan in by_arm.items():
            case = cases[loan.loan_id]
            assert (case["experiment"], case["strategy"]) == ("live-ab", arm)
            assert case["policy"].startswith(f"{'gentle' if arm == 'gentle' else 'standard'}@")
            described = await client.handle(loan.loan_id).describe()
            assert described.typed_search_attributes.get(sa.STRATEGY) == arm
            assert (await client.status(loan.loan_id)).policy == case["policy"]
        explicit = cases[named.loan_id]
        assert (explicit["experiment"], explicit["strategy"]) == (None, None)
        described = await client.handle(named.loan_id).describe()
        assert described.typed_search_attributes.get(sa.STRATEGY) is None
        # reported the way a simulated ledger is: grouped by arm, challenger vs champion
        figures = await compute(h.ledger.engine, by="strategy",
                                experiment_dir=str(experiments))
        loans = {g.key: g.loans for g in figures.groups}
        assert loans.get("live-ab/champion", 0) >= 1 and loans.get("live-ab/gentle", 0) >= 1, \
            loans
        assert any((c.champion, c.challenger) == ("champion", "gentle")
                   for c in figures.comparisons), figures.comparisons
    finally:
        await client.end_all()


async def test_the_api_hand_over_starts_on_the_arm_and_refuses_a_broken_experiment(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    policies, experiments = tmp_path / "policies", tmp_path / "experiments"
    policies.mkdir()
    experiments.mkdir()
    gentle_policy(policies)
    write(experiments, "api-ab", "name: api-ab\n" + ARMS.replace(
        "{name: gentle, policy: standard", "{name: gentle, policy: gentle"))
    settings = Settings(**{**settings_for_tests().model_dump(), "experiment": "api-ab",
                           "experiment_dir": str(experiments), "policy_dir": str(policies)})
    exp = handover.settings_experiment(settings)
    assert exp is not None
    now = await h.env.get_current_time()
    loan = make_loan(now, dpd=3)
    while exp.assign(loan.loan_id).name != "gentle":
        loan = make_loan(now, dpd=3)
    client = ArmClient(h.env, h.task_queue)
    keys = KeyStore(h.ledger.engine)
    token = (await keys.create("platform-1", "platform"))[1]
    auth = {"Authorization": f"Bearer {token}"}
    body = loan.model_dump(mode="json", exclude={"policy"})
    try:
        app = create_app(settings, Services(client=client, ledger=h.ledger, keys=keys,
                                            settings=settings))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as http:
            started = await http.post("/v1/loans", json=body, headers=auth)
            assert started.status_code == 201, started.text
            assert started.json()["policy"].startswith("gentle@")
            await h.settle(loan.loan_id)
            case = (await h.ledger.rows(t.collection_cases, loan_id=loan.loan_id))[0]
            assert (case["experiment"], case["strategy"]) == ("api-ab", "gentle")
            described = await client.handle(loan.loan_id).describe()
            assert described.typed_search_attributes.get(sa.STRATEGY) == "gentle"
        write(experiments, "api-ab", "name: api-ab\n" + ARMS.replace('"0.5"', '"0.6"', 1))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as http:
            other = make_loan(now, dpd=3).model_dump(mode="json", exclude={"policy"})
            refused = await http.post("/v1/loans", json=other, headers=auth)
            assert refused.status_code == 503, refused.text
            assert "the shares must sum to 1, but they sum to 1.1" in refused.json()["detail"]
            assert not await h.ledger.rows(t.collection_cases, loan_id=other["loan_id"])
    finally:
        await client.end_all()


async def test_the_arm_survives_continue_as_new(harness: Harness) -> None:
    """A long life continues as new: the next run's input still carries the arm, and the
    Strategy search attribute stays on the loan."""
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=1)
    h.client.started.append(loan.loan_id)
    arm = StrategyChoice(experiment="ab", strategy="gentle")
    first = await h.env.client.start_workflow(
        "LoanCollection", CollectionInput(loan=loan, policy=load_policy("standard"),
                                          history_limit=100, strategy=arm),
        id=loan.workflow_id, task_queue=h.task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.STRATEGY, "gentle")]))
    assert (await h.client.result(loan.loan_id)).outcome == "WRITTEN_OFF"
    handle = h.client.handle(loan.loan_id)
    latest = await handle.describe()
    assert latest.run_id != first.result_run_id, "the run should have continued as new"
    assert latest.typed_search_attributes.get(sa.STRATEGY) == "gentle"
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id
    inp = (await h.env.client.data_converter.decode(list(started.input.payloads),
                                                    [CollectionInput]))[0]
    assert inp.state is not None and inp.strategy == arm
    case = (await h.rows(t.collection_cases, loan_id=loan.loan_id))[0]
    assert (case["experiment"], case["strategy"]) == ("ab", "gentle")


async def test_the_starter_refuses_to_start_under_a_broken_experiment(tmp_path: Path) -> None:
    """DUECOURSE_EXPERIMENT naming a bad file stops `duecourse start` before it connects,
    with the file's sentence."""
    write(tmp_path, "broken", "name: broken\n" + ARMS.replace("policy: standard",
                                                             "policy: kindness", 1))
    loans = tmp_path / "loans.csv"
    loans.write_text("loan_id,borrower_id,borrower_name,timezone,jurisdiction,currency,"
                     "principal,outstanding,days_past_due\n", encoding="utf-8")
    settings = Settings(experiment="broken", experiment_dir=str(tmp_path),
                        temporal_address="127.0.0.1:1")
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        code = await handover.run(settings, loans, Console(file=io.StringIO()))
    assert code == 1
    assert "champion.policy names 'kindness', which is not a policy" in out.getvalue()
    assert "cannot connect" not in out.getvalue()

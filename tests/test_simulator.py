"""The portfolio simulator (issue 14 item 1): reproducible, driven by its behaviour file,
refusing bad files by field, and writing a ledger in the project's own schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from duecourse.cli.app import app
from duecourse.lab.behaviour import DEFAULTS, BehaviourError, load_behaviour
from duecourse.lab.experiments import load_experiment
from duecourse.lab.simulator import CHUNK, simulate
from duecourse.store import tables as t
from duecourse.store.database import alembic_config, connect
from duecourse.store.ledger import Ledger

TABLES = ["loans", "collection_cases", "stage_transitions", "payments", "promises",
          "compliance_decisions", "contact_attempts", "tasks", "agreements", "audit_events"]


def dump(ledger: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table the simulator writes, in id order."""
    with sqlite3.connect(ledger) as db:
        return {name: db.execute(f"SELECT * FROM {name} ORDER BY rowid").fetchall()
                for name in TABLES}


def behaviour_file(tmp_path: Path, change: dict[str, Any]) -> Path:
    """The bundled defaults with `change` merged in (dotted keys)."""
    data = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))
    for dotted, value in change.items():
        *path, last = dotted.split(".")
        node = data
        for key in path:
            node = node[key]
        node[last] = value
    path = tmp_path / "behaviour.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_same_seed_same_ledger_and_another_seed_differs(tmp_path: Path) -> None:
    first = simulate(tmp_path / "a", 40, 60, seed=7)
    again = simulate(tmp_path / "b", 40, 60, seed=7)
    other = simulate(tmp_path / "c", 40, 60, seed=8)
    a, b, c = dump(first.ledger), dump(again.ledger), dump(other.ledger)
    assert a == b
    assert a["contact_attempts"] and a["stage_transitions"] and a["compliance_decisions"]
    assert a["loans"] != c["loans"] and a["audit_events"] != c["audit_events"]


def test_processes_do_not_change_the_result(tmp_path: Path) -> None:
    """Loans are simulated in fixed chunks, each from its own seed: two processes write
    exactly what one does."""
    loans = CHUNK + 20
    one = simulate(tmp_path / "one", loans, 20, seed=3, workers=1)
    two = simulate(tmp_path / "two", loans, 20, seed=3, workers=2)
    assert dump(one.ledger) == dump(two.ledger)


@pytest.mark.parametrize(("change", "named"), [
    ({"behaviour.reach.sms": 1.5}, "behaviour.reach.sms must be a rate between 0 and 1"),
    ({"behaviour.on_reach.promise": 0.5}, "behaviour.on_reach shares sum to 1.25, not 1"),
    ({"portfolio.jurisdictions.GB.share": 0.5},
     "portfolio.jurisdictions shares sum to 1.25, not 1"),
    ({"behaviour.replies_per_day": 3}, "unknown field behaviour.replies_per_day"),
    ({"portfolio.channels_held.fax": 0.5}, "channels_held has unknown channel 'fax'"),
    ({"behaviour.supervisor.legal_approves": 1.5},
     "behaviour.supervisor.legal_approves must be a rate between 0 and 1"),
    ({"behaviour.plan_adherence": {"self_cure": 0.5}},
     "behaviour.plan_adherence has no rate for segment cant_pay"),
])
def test_a_bad_behaviour_file_is_refused_naming_the_field(
        tmp_path: Path, change: dict[str, Any], named: str) -> None:
    path = behaviour_file(tmp_path, change)
    with pytest.raises(BehaviourError) as err:
        load_behaviour(path)
    assert named in str(err.value)
    assert "\n" not in str(err.value) and "pydantic" not in str(err.value)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["simulate", "--loans", "5", "--days", "5",
                                      "--behaviour", str(path), "--out", str(out)])
    assert result.exit_code != 0
    assert named in " ".join(result.output.split())
    assert not (out / "ledger.db").exists()


@pytest.mark.parametrize(("champion", "challenger", "named"), [
    ('share: "0.5", colour: red', 'share: "0.5"', "champion.colour is not a field"),
    ('share: "1.5"', 'share: "0.5"', "champion.share must be at most 1"),
    ('share: "0.5"', 'share: "0.4"', "the shares must sum to 1, but they sum to 0.9"),
])
def test_a_bad_experiment_file_is_refused_naming_the_field(
        tmp_path: Path, champion: str, challenger: str, named: str) -> None:
    path = tmp_path / "trial.yaml"
    path.write_text(f"name: trial\nchampion: {{name: champion, policy: standard, {champion}}}"
                    f"\nchallengers:\n  - {{name: other, policy: standard, {challenger}}}\n",
                    encoding="utf-8")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["simulate", "--loans", "5", "--days", "5",
                                      "--experiment", str(path), "--out", str(out)])
    assert result.exit_code != 0
    assert named in " ".join(result.output.split())
    assert not (out / "ledger.db").exists()


def test_behaviour_drives_the_outcomes(tmp_path: Path) -> None:
    """Everyone self-cures within a day: every loan is paid by the end of day one. Nobody
    pays or answers: no payment at all, and the loans roll on to legal."""
    cure = behaviour_file(tmp_path, {f"behaviour.self_cure.{s}": 1.0 for s in (
        "self_cure", "cant_pay", "wont_pay", "unreachable")} | {
        "behaviour.self_cure_within_days": 1, "behaviour.dpd_factor": {"1-9999": 1.0}})
    paid = simulate(tmp_path / "cure", 30, 10, seed=1, behaviour=cure)
    assert paid.outcomes == {"PAID": 30}
    silent = behaviour_file(tmp_path, {f"behaviour.self_cure.{s}": 0.0 for s in (
        "self_cure", "cant_pay", "wont_pay", "unreachable")} | {
        f"behaviour.reach.{ch}": 0.0 for ch in ("sms", "email", "voice", "letter", "visit")})
    none = simulate(tmp_path / "silent", 30, 60, seed=1, behaviour=silent)
    rows = dump(none.ledger)
    assert rows["payments"] == [] and none.outcomes == {"OPEN": 30}
    with sqlite3.connect(none.ledger) as db:
        stages = {r[0] for r in db.execute("SELECT to_stage FROM stage_transitions")}
    assert "LEGAL" in stages


async def test_the_ledger_is_the_projects_own_schema(tmp_path: Path) -> None:
    result = simulate(tmp_path / "sim", 25, 45, seed=2, experiment="demo-ab")
    script = ScriptDirectory.from_config(alembic_config())
    with sqlite3.connect(result.ledger) as db:
        version = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert version == [(script.get_current_head(),)]
    engine = connect(f"sqlite+aiosqlite:///{result.ledger}")
    try:
        ledger = Ledger(engine)
        cases = await ledger.rows(t.collection_cases)
        assert len(cases) == 25
        experiment = load_experiment("demo-ab")
        assert {c["experiment"] for c in cases} == {"demo-ab"}
        assert {c["strategy"] for c in cases} == {arm.name for arm in experiment.arms}
        for case in cases:  # each loan on its arm's policy, as the experiment assigns it
            arm = experiment.assign(case["loan_id"])
            assert (case["strategy"], case["policy"].split("@")[0]) == (arm.name, arm.policy)
        first = cases[0]["loan_id"]
        timeline = await ledger.timeline(first)
        assert timeline[0].kind == "case_opened"
        assert {i.kind for i in timeline} >= {"stage_changed", "compliance_decision"}
        sent = await ledger.rows(t.contact_attempts, loan_id=first)
        decided = {r["idempotency_key"] for r in await ledger.rows(t.compliance_decisions)}
        assert sent and all(r["decision_key"] in decided for r in sent)
    finally:
        await engine.dispose()


def test_the_cli_reports_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "--loans", "10", "--days", "20", "--seed", "4", "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "loan-days/s" in first.output and (out / "ledger.db").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "already exists" in again.output

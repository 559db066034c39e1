"""The versioning guard: every saved history replays with today's workflow code.

Loans run for months across deploys; a change that makes a running loan's history replay
differently fails that loan's next workflow task in production. The histories in
tests/histories/ (recorded by `python -m tests.histories.record`) are replayed offline -
no server - so such a change fails CI instead. The last tests prove the guard bites: the
same histories fail against a deliberately changed workflow, and pass when that change is
put behind `workflow.patched`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from duecourse.runtime import WORKFLOWS, sandbox_runner
from tests.histories import EXPECTED, HISTORIES, INDEX, RECORD_COMMAND, Saved
from tests.histories.mutants import ExtraTimerCollection, PatchedExtraTimerCollection
from tests.support.sealing import sealed

SAVED = sorted(p for p in HISTORIES.rglob("*.json") if p != INDEX)
"""Every saved history, including any kept in subfolders from earlier versions."""
LOAN_COLLECTION = [s.file for s in EXPECTED if s.workflow_type == "LoanCollection"]
RECORD = f"run `{RECORD_COMMAND}` to record it, and commit it saying why"


def _name(path: Path) -> str:
    return path.relative_to(HISTORIES).as_posix()


@cache
def _index() -> dict[str, Any]:
    return json.loads(INDEX.read_text()) if INDEX.exists() else {}


def load(path: Path) -> WorkflowHistory:
    """A saved history with its workflow id (`to_json()` leaves it out; index.json has it)."""
    if not path.exists():
        pytest.fail(f"{_name(path)} is missing: {RECORD}")
    workflow_id = _index().get(_name(path), {}).get("workflow_id", f"replay-{path.stem}")
    return WorkflowHistory.from_json(workflow_id, path.read_text())


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def defined_name(cls: type) -> str:
    return getattr(cls, "__temporal_workflow_definition").name


def replayer(loan_collection: type | None = None) -> Replayer:
    """Today's workflows, optionally with LoanCollection replaced by a changed class."""
    workflows = list(WORKFLOWS)
    if loan_collection is not None:
        workflows = [loan_collection, *(w for w in WORKFLOWS
                                        if defined_name(w) != "LoanCollection")]
    return Replayer(workflows=workflows, data_converter=sealed(),
                    workflow_runner=sandbox_runner())


# --------------------------------------------------------------------------- the guard
@pytest.mark.parametrize("path", SAVED, ids=[_name(p) for p in SAVED])
async def test_saved_history_replays_with_todays_code(path: Path) -> None:
    await replayer().replay_workflow(load(path))


def test_every_scenario_has_its_saved_history() -> None:
    missing = [s.file for s in EXPECTED if not (HISTORIES / s.file).exists()]
    assert not missing, f"saved histories missing: {', '.join(missing)}; {RECORD}"


def test_saved_histories_cover_every_workflow_type() -> None:
    saved = {workflow_type(load(p)) for p in SAVED}
    missing = {defined_name(w) for w in WORKFLOWS} - saved
    assert not missing, (f"no saved history of {', '.join(sorted(missing))}: add a scenario "
                         f"to tests/histories/record.py and {RECORD}")


@pytest.mark.parametrize("saved", EXPECTED, ids=[s.file for s in EXPECTED])
def test_each_file_holds_the_workflow_it_is_named_for(saved: Saved) -> None:
    assert workflow_type(load(HISTORIES / saved.file)) == saved.workflow_type


def test_the_continued_as_new_pair_is_a_first_and_a_continued_run() -> None:
    first = load(HISTORIES / "loan_collection.continued_as_new.first_run.json")
    final = load(HISTORIES / "loan_collection.continued_as_new.final_run.json")
    assert first.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    started = final.events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id, "the final run should continue an earlier one"
    assert final.events[-1].HasField("workflow_execution_completed_event_attributes")


# --------------------------------------------------------------------------- it bites
@pytest.mark.parametrize("file", LOAN_COLLECTION)
async def test_the_guard_fails_on_a_breaking_change(file: str) -> None:
    """One extra timer at the start of `run` is the kind of change that breaks running
    loans; replaying must say so, for every saved loan history."""
    with pytest.raises(NondeterminismError):
        await replayer(ExtraTimerCollection).replay_workflow(load(HISTORIES / file))


async def test_the_same_change_behind_a_patch_replays() -> None:
    history = load(HISTORIES / "loan_collection.paid_in_reminder.json")
    await replayer(PatchedExtraTimerCollection).replay_workflow(history)

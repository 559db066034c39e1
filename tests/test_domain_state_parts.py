"""The collection state in parts still loads the flat state that 0.3 carried across
continue-as-new: loans running on 0.3 and the saved histories start runs with it."""

from __future__ import annotations

import base64
import json
from typing import Any

from duecourse.domain.case.flat_state import FLAT_KEYS
from duecourse.domain.case.state import CollectionState, LegalPhase
from duecourse.temporal.contracts import CollectionInput
from tests.histories import HISTORIES

CONTINUED = HISTORIES / "loan_collection.continued_as_new.final_run.json"
PARTS = tuple(FLAT_KEYS)


def started_input() -> dict[str, Any]:
    """The WorkflowExecutionStarted input of the continued run, as 0.3 serialised it."""
    started = json.loads(CONTINUED.read_text())["events"][0]
    payload = started["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    loaded: dict[str, Any] = json.loads(base64.b64decode(payload["data"]))
    return loaded


def flat_state() -> dict[str, Any]:
    state: dict[str, Any] = started_input()["state"]
    assert not set(PARTS) & set(state), "the saved history should hold the flat shape"
    return state


def lands(now: Any, saved: Any) -> bool:
    """`saved` arrived whole: every value kept; a field added since the history was saved
    (an object's new key) may appear only with its empty default."""
    if isinstance(now, dict) and isinstance(saved, dict):
        added = set(now) - set(saved)
        return all(lands(now[k], v) for k, v in saved.items() if k in now) and \
            set(saved) <= set(now) and all(now[k] in (None, False, [], {}) for k in added)
    return bool(now == saved)


def test_every_flat_key_of_a_saved_state_lands_in_its_part() -> None:
    flat = flat_state()
    assert flat["steps"] and flat["contacts"] and flat["tasks"], "a state worth moving"
    dumped = CollectionState.model_validate(flat).model_dump(mode="json")
    moved = {old for keys in FLAT_KEYS.values() for old in keys}
    for part, keys in FLAT_KEYS.items():
        for old, new in keys.items():
            assert lands(dumped[part][new], flat[old]), f"{old} -> {part}.{new}"
    for key in set(flat) - moved:
        assert lands(dumped[key], flat[key]), f"{key} stays at top level"


def test_the_legal_keys_lose_their_prefix_inside_the_legal_part() -> None:
    saved = flat_state()
    at = saved["opened_at"]
    flat = saved | {"legal_phase": "CURE_PERIOD", "legal_phase_at": at,
                    "legal_barred": "time_barred", "legal_not_before": at,
                    "legal_demand_requested": True, "approval_escalations": 2}
    legal = CollectionState.model_validate(flat).legal
    assert legal.phase is LegalPhase.CURE_PERIOD and legal.barred == "time_barred"
    assert legal.phase_at == legal.not_before is not None
    assert legal.demand_requested and legal.approval_escalations == 2


def test_the_continued_run_input_loads_with_its_history() -> None:
    state = CollectionInput.model_validate(started_input()).state
    assert state is not None
    assert len(state.contacting.steps) == len(flat_state()["steps"])
    assert state.contacting.contacts_sent == sum(
        r["status"] == "sent" for r in flat_state()["steps"])
    assert [t.task_id for t in state.work.open_tasks] == [
        t["task_id"] for t in flat_state()["tasks"] if t["status"] == "open"]


def test_todays_state_is_nested_and_reloads_as_it_was() -> None:
    state = CollectionState.model_validate(flat_state())
    dumped = state.model_dump(mode="json")
    assert not {old for keys in FLAT_KEYS.values() for old in keys} & set(dumped)
    assert CollectionState.model_validate(dumped) == state
    assert CollectionState.model_validate_json(state.model_dump_json()) == state

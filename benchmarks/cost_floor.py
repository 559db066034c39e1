"""The floor's moving parts outside its workflow: its one-row SQLite write (the ledger's
own engine setup and stack, idempotent like the ledger's writes), its worker -
in the engine's process, sandboxed alike - and the client calls a platform would make.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from benchmarks.cost_floor_workflow import FLOOR_ROW, FLOOR_WORKFLOW, FloorLoanWorkflow
from benchmarks.cost_shape import Shape
from duecourse.runtime import sandbox_runner
from duecourse.store import connect

_metadata = MetaData()
floor_rows = Table("floor_rows", _metadata,
                   Column("key", String, primary_key=True),
                   Column("written_at", DateTime(timezone=True), nullable=False))


async def floor_store(path: Path) -> AsyncEngine:
    """The floor's SQLite file, opened exactly as the ledger's is (WAL, busy timeout)."""
    engine = connect(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(_metadata.create_all)
    return engine


class FloorRows:
    """The floor's only activity: one row per business step, keyed so a retry is a no-op."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name=FLOOR_ROW)
    async def write(self, key: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(floor_rows).values(
                key=key, written_at=datetime.now(UTC)).on_conflict_do_nothing())

    async def count(self, like: str) -> int:
        async with self.engine.connect() as conn:
            query = select(func.count()).select_from(floor_rows).where(
                floor_rows.c.key.like(like))
            return int((await conn.execute(query)).scalar_one())


def floor_worker(client: Client, rows: FloorRows, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[FloorLoanWorkflow],
                  activities=[rows.write], workflow_runner=sandbox_runner())


class FloorClient:
    """Hand over, pay and agree, as the platform does with the engine's client."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def start(self, workflow_id: str, shape: Shape) -> WorkflowHandle[object, int]:
        return await self.client.start_workflow(
            FLOOR_WORKFLOW, shape, id=workflow_id, task_queue=self.task_queue,
            result_type=int)

    async def pay(self, workflow_id: str) -> None:
        await self.client.get_workflow_handle(workflow_id).signal("pay")

    async def agree(self, workflow_id: str) -> None:
        await self.client.get_workflow_handle(workflow_id).execute_update("agree",
                                                                          result_type=int)

    async def result(self, workflow_id: str) -> int:
        return await self.client.get_workflow_handle(workflow_id, result_type=int).result()

    async def run(self, workflow_id: str, shape: Shape) -> int:
        """One floor loan through its shape: its commands, then its payments."""
        await self.start(workflow_id, shape)
        for _ in range(shape.commands):
            await self.agree(workflow_id)
        for _ in range(shape.payments):
            await self.pay(workflow_id)
        return await self.result(workflow_id)

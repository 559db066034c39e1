"""A blank ledger database per test, on SQLite or in a throwaway PostgreSQL schema (the
server CI starts; a test on it skips, saying why, when none answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.store import connect
from tests.conftest import POSTGRES_URL


@asynccontextmanager
async def blank_database(kind: str, tmp_path: Path, prefix: str) -> AsyncIterator[AsyncEngine]:
    """An empty, unmigrated database of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        eng = connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
        try:
            yield eng
        finally:
            await eng.dispose()
        return
    schema = f"{prefix}_{uuid4().hex[:10]}"
    admin = connect(POSTGRES_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except (OSError, DBAPIError) as err:
        await admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {err}")
    eng = connect(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield eng
    finally:
        await eng.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()

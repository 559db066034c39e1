"""Which collection cases of a loan have closed, read from `collection_cases`.

The ledger is the authority here, not Temporal: the server forgets a closed workflow after
its retention period, while the ledger keeps every case with its outcome for good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import RowMapping, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.domain.case.reopening import ClosedCase
from duecourse.store import tables as t

Database = AsyncEngine | AsyncConnection
"""An engine, or a connection whose transaction the read should join."""

CHUNK = 500
"""Loan ids per query, well below SQLite's limit on bound parameters."""


async def last_closed_case(db: Database, loan_id: str, *, excluding: str | None = None,
                           for_update: bool = False) -> ClosedCase | None:
    """The loan's closed case with the latest due date (the one a hand-over is judged
    against), or None. `excluding` skips a case id (the one being opened); `for_update`
    locks the loan's case rows (PostgreSQL), so a close committing meanwhile is seen.
    """
    cases = t.collection_cases
    query = _cases([loan_id])
    if excluding is not None:
        query = query.where(cases.c.case_id != excluding)
    if for_update:
        # Lock every case of the loan, open ones too: a row only locked when already
        # closed would miss a close that commits while this reads.
        query = query.with_for_update()
    async with _connection(db) as conn:
        rows = (await conn.execute(query)).mappings().all()
    return _latest(rows).get(loan_id)


async def last_closed_cases(db: Database, loan_ids: Sequence[str]) -> dict[str, ClosedCase]:
    """`last_closed_case` for many loans at once (a hand-over file), keyed by loan id;
    loans that never closed a case are absent."""
    ids = list(dict.fromkeys(loan_ids))
    found: dict[str, ClosedCase] = {}
    async with _connection(db) as conn:
        for start in range(0, len(ids), CHUNK):
            rows = (await conn.execute(_cases(ids[start:start + CHUNK]))).mappings().all()
            found.update(_latest(rows))
    return found


def _cases(loan_ids: list[str]) -> Select[Any]:
    c = t.collection_cases
    return select(c.c.case_id, c.c.loan_id, c.c.due_date, c.c.outcome,
                  c.c.closed_at).where(c.c.loan_id.in_(loan_ids))


def _latest(rows: Sequence[RowMapping]) -> dict[str, ClosedCase]:
    """Per loan, the closed case with the latest due date (then the latest close)."""
    latest: dict[str, ClosedCase] = {}
    for row in rows:
        if row["outcome"] is None or row["closed_at"] is None:
            continue  # still open
        closed = ClosedCase.model_validate(dict(row))
        best = latest.get(closed.loan_id)
        if best is None or (closed.due_date, closed.closed_at) > (best.due_date,
                                                                  best.closed_at):
            latest[closed.loan_id] = closed
    return latest


@asynccontextmanager
async def _connection(db: Database) -> AsyncIterator[AsyncConnection]:
    if isinstance(db, AsyncConnection):
        yield db
        return
    async with db.connect() as conn:
        yield conn

"""The webhook outbox: deliveries still owed, queued in the transaction of their fact.

One row per (event, webhook), not per event: each receiver has its own attempts, retry
time and lease, so a receiver that is down never holds back (nor re-sends to) another, and
who gets the event - the webhooks subscribed to its type, of the loan's owner - is decided
once, as the fact is written. No webhook wants it: no row, and no work at all.

A row is claimed with a token and a lease (see tables.webhook_outbox); on PostgreSQL the
claim also skips rows another dispatcher is claiming right now (FOR UPDATE SKIP LOCKED),
SQLite has one writer at a time. Rows that this process queues wake its dispatchers at
once (`announce_queued`); rows queued by other processes are found by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.domain.entries import LedgerEntry
from duecourse.domain.events import OutboundEvent, events_for
from duecourse.observability.tracing import current_traceparent
from duecourse.store import tables as t
from duecourse.store.webhooks import wanting, webhooks_in
from duecourse.temporal.contracts import RecordEntries

_listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class OutboxRow:
    """One delivery owed: the event's exact body, to one webhook; `traceparent`: the trace
    of the span that queued it (tracing on), which each delivery attempt continues."""

    row_id: int
    event_id: str
    webhook_id: str
    body: str
    attempts: int
    traceparent: str | None = None

    def event(self) -> OutboundEvent:
        return OutboundEvent.model_validate_json(self.body)


async def enqueue_events(conn: AsyncConnection, cmd: RecordEntries,
                         entries: Sequence[LedgerEntry]) -> int:
    """Queue the events `entries` announce for the webhooks that want each, inside the
    ledger transaction `conn`; returns how many rows are new. Nothing when `cmd` carries
    no balance: an event states the balance after its fact, and only a loan's workflow
    knows it (entries written without one, as by tests and tools, announce nothing). A row
    already queued (a retried batch) is left alone. Each row keeps the trace context of
    the span writing it (the recording activity's), when there is one."""
    if cmd.outstanding is None:
        return 0
    events = events_for(entries, cmd.case_id, cmd.loan_id, cmd.workflow_id,
                        cmd.outstanding.amount, cmd.outstanding.currency)
    hooks = await webhooks_in(conn, include_disabled=False) if events else []
    if not hooks:
        return 0
    owner = (await conn.execute(select(t.loan_owners.c.platform).where(
        t.loan_owners.c.loan_id == cmd.loan_id))).scalar()
    now, traceparent = _utcnow(), current_traceparent()
    rows = [{"event_id": event.event_id, "webhook_id": hook.webhook_id,
             "body": event.model_dump_json(), "attempts": 0, "next_attempt_at": now,
             "claim": None, "created_at": now, "traceparent": traceparent}
            for event in events for hook in wanting(hooks, event.type, owner)]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    result = await conn.execute(dialect.insert(t.webhook_outbox).values(rows)
                                .on_conflict_do_nothing(index_elements=["event_id",
                                                                        "webhook_id"]))
    return max(result.rowcount, 0)


def announce_queued() -> None:
    """Wake this process's dispatchers: rows were just committed."""
    for loop, wake in list(_listeners):
        loop.call_soon_threadsafe(wake.set)


@contextlib.contextmanager
def listening(wake: asyncio.Event) -> Iterator[None]:
    """Have `announce_queued` set `wake` while inside."""
    entry = (asyncio.get_running_loop(), wake)
    _listeners.add(entry)
    try:
        yield
    finally:
        _listeners.discard(entry)


class WebhookOutbox:
    """Claims and settles outbox rows; every write after a claim is fenced by its token."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim_due(self, limit: int, lease: timedelta) -> tuple[str, list[OutboxRow]]:
        """Claim up to `limit` due rows, soonest first, for `lease`; (token, rows)."""
        o = t.webhook_outbox
        now, token = _utcnow(), secrets.token_hex(16)
        due = (select(o.c.id).where(o.c.next_attempt_at <= now)
               .order_by(o.c.next_attempt_at, o.c.id).limit(limit)
               .with_for_update(skip_locked=True))
        claim = (update(o).where(o.c.id.in_(due.scalar_subquery()), o.c.next_attempt_at <= now)
                 .values(claim=token, next_attempt_at=now + lease)
                 .returning(o.c.id, o.c.event_id, o.c.webhook_id, o.c.body, o.c.attempts,
                            o.c.traceparent))
        async with self.engine.begin() as conn:
            rows = (await conn.execute(claim)).all()
        return token, sorted((OutboxRow(*row) for row in rows), key=lambda r: r.row_id)

    async def settle(self, row: OutboxRow, token: str) -> bool:
        """The delivery is recorded for good: the row goes. False when the claim was lost
        (the lease ran out and another dispatcher holds the row now)."""
        o = t.webhook_outbox
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(o).where(o.c.id == row.row_id,
                                                        o.c.claim == token))
        return bool(result.rowcount)

    async def retry_at(self, row: OutboxRow, token: str, attempts: int, when: datetime) -> bool:
        """Count the attempts made and free the row until `when`."""
        o = t.webhook_outbox
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(o).where(o.c.id == row.row_id, o.c.claim == token)
                .values(attempts=attempts, next_attempt_at=when, claim=None))
        return bool(result.rowcount)

    async def release(self, token: str) -> None:
        """Hand back what a claim still holds (a dispatcher stopping), due at once."""
        o = t.webhook_outbox
        async with self.engine.begin() as conn:
            await conn.execute(update(o).where(o.c.claim == token)
                               .values(claim=None, next_attempt_at=_utcnow()))

    async def next_due(self) -> datetime | None:
        """When the soonest row falls due (None: the outbox is empty)."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.min(
                t.webhook_outbox.c.next_attempt_at)))).scalar()

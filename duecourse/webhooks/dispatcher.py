"""The outbox dispatcher: one long-lived task per worker process delivering outbox rows.

It claims due rows (duecourse.store.outbox), posts each through the sender, records the
attempt, and then deletes the row (delivered, or failed for good) or frees it until its
next try on the retry schedule (2 s doubling to 10 min, 20 attempts, then given up and
recorded as failed). Rows this process queues wake it at once; others' are found by
polling. Rows outlive the process: a restart carries on where it stopped, and a row a dead
dispatcher held falls due again when its lease runs out.

A ledger that cannot be reached stops nothing: the dispatcher logs one line when the
outage begins and one when it ends, and keeps trying with a growing pause meanwhile.

With tracing on, each attempt is a `DeliverWebhook` span in the trace of the activity that
queued the row (duecourse.observability.tracing), so a trace runs from the API request to
the platform's endpoint; with it off, the span records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import structlog
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from duecourse.domain.events import DELIVERY_SCHEDULE, RetrySchedule
from duecourse.observability.tracing import continuing
from duecourse.store.outbox import OutboxRow, WebhookOutbox, listening
from duecourse.store.webhooks import FINAL, WebhookStore
from duecourse.webhooks.delivery import WebhookSender

log = structlog.get_logger(__name__)

OUTAGE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
"""What an unreachable (or mid-failover) ledger raises: wait for it, never crash."""

LONGEST_OUTAGE_PAUSE = 30.0  # seconds between tries while the ledger is unreachable
RACE_PAUSE = 0.05  # seconds: a due row someone else is claiming will not be due for long


class OutboxDispatcher:
    """`poll_seconds`: the longest pause before looking for rows other processes queued;
    `lease`: how long a claim holds a row (longer than a POST's timeout); `batch`: rows
    claimed, and posted concurrently, per pass."""

    def __init__(self, store: WebhookStore, sender: WebhookSender | None = None,
                 schedule: RetrySchedule = DELIVERY_SCHEDULE, poll_seconds: float = 1.0,
                 lease: timedelta = timedelta(seconds=60), batch: int = 20) -> None:
        self._store = store
        self._outbox = WebhookOutbox(store.engine)
        self._sender = sender or WebhookSender(store)
        self._schedule = schedule
        self._poll = poll_seconds
        self._lease = lease
        self._batch = batch
        self._wake = asyncio.Event()
        self._claims: set[str] = set()  # tokens of the passes in flight
        self._stopping = False
        self._outage_pause = 0.0  # seconds; 0 while the ledger answers

    @contextlib.asynccontextmanager
    async def running(self, grace: float = 15.0) -> AsyncIterator[None]:
        """Dispatch in the background while inside; on leaving, let the pass in flight
        finish for up to `grace` seconds, then cancel it (its rows fall due again when
        their lease runs out)."""
        task = asyncio.create_task(self.run(), name="webhook-dispatcher")
        try:
            yield
        finally:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait({task}, timeout=grace)
            finally:
                task.cancel()  # a no-op once it has finished
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await self._release_claims()

    async def _release_claims(self) -> None:
        """Rows a cancelled pass still held are due again at once, not when their lease
        runs out (best effort: an unreachable ledger lets the lease do it)."""
        for token in list(self._claims):
            with contextlib.suppress(*OUTAGE_ERRORS):
                await self._outbox.release(token)
            self._claims.discard(token)

    async def run(self) -> None:
        """Until `running` stops it: deliver what is due, then wait for more."""
        with listening(self._wake):
            while not self._stopping:
                self._wake.clear()  # before the pass: rows queued during it wake the next
                pause = await self._pass()
                if pause > 0 and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), pause)

    async def _pass(self) -> float:
        """One pass; returns how long to pause before the next."""
        try:
            pause = await self._until_due()
            if pause == 0 and not await self.dispatch_due():
                pause = RACE_PAUSE  # due, but another dispatcher is claiming it right now
        except OUTAGE_ERRORS as err:
            if self._outage_pause == 0:
                log.warning("ledger unreachable; webhook deliveries wait for it",
                            error=type(err).__name__)
            self._outage_pause = min(max(self._outage_pause * 2, self._poll),
                                     LONGEST_OUTAGE_PAUSE)
            return self._outage_pause
        except Exception:  # a bug of ours must not end every delivery of this worker
            log.exception("webhook dispatch failed")
            return max(self._poll, 1.0)
        if self._outage_pause:
            log.info("ledger reachable again; webhook deliveries resume")
            self._outage_pause = 0.0
        return pause

    async def _until_due(self) -> float:
        """Seconds until the soonest row falls due, at most the poll interval; a read, so
        an idle dispatcher never takes SQLite's write lock."""
        soonest = await self._outbox.next_due()
        if soonest is None:
            return self._poll
        return min(self._poll, max((soonest - datetime.now(UTC)).total_seconds(), 0.0))

    async def dispatch_due(self) -> int:
        """Claim the rows due now and deliver each; returns how many were claimed. Raises
        what the ledger raised once every claimed row has been dealt with."""
        token, rows = await self._outbox.claim_due(self._batch, self._lease)
        self._claims.add(token)  # until the pass ends; a cancelled pass leaves it for stop
        results = await asyncio.gather(*(self._deliver(row, token) for row in rows),
                                       return_exceptions=True)
        self._claims.discard(token)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(rows)

    async def _deliver(self, row: OutboxRow, token: str) -> None:
        with continuing(row.traceparent, "DeliverWebhook", {
                "duecourse.event_id": row.event_id, "duecourse.webhook_id": row.webhook_id,
                "duecourse.attempt": row.attempts + 1}) as span:
            status, code = await self._deliver_row(row, token)
            span.set_attribute("duecourse.delivery", status)
            if code is not None:
                span.set_attribute("http.response.status_code", code)

    async def _deliver_row(self, row: OutboxRow, token: str) -> tuple[str, int | None]:
        """Deliver or give up the row; returns what became of it and the HTTP status the
        receiver answered, for the span."""
        hook = await self._store.get(row.webhook_id)
        if hook is None or hook.disabled_at is not None:
            log.info("webhook disabled; its delivery dropped", event_id=row.event_id,
                     webhook_id=row.webhook_id)
            await self._outbox.settle(row, token)
            return "dropped", None
        if await self._store.delivery_status(row.event_id, row.webhook_id) in FINAL:
            # recorded, then a crash before the row went: never post it again
            await self._outbox.settle(row, token)
            return "already recorded", None
        attempt = row.attempts + 1
        try:
            event = row.event()
        except ValidationError:  # no code of ours can ever post it: count it, give it up
            log.error("outbox row unreadable", row_id=row.row_id, event_id=row.event_id,
                      webhook_id=row.webhook_id, attempt=attempt, exc_info=True)
            await self._next_try_or_give_up(row, token, attempt)
            return "unreadable", None
        outcome = await self._sender.deliver(event, hook, attempt,
                                             last_try=attempt >= self._schedule.attempts)
        if outcome.status == "pending":
            await self._next_try_or_give_up(row, token, attempt)
        else:
            await self._outbox.settle(row, token)
        return outcome.status, outcome.code

    async def _next_try_or_give_up(self, row: OutboxRow, token: str, attempt: int) -> None:
        if attempt >= self._schedule.attempts:
            await self._outbox.settle(row, token)
            return
        when = datetime.now(UTC) + self._schedule.delay_after(attempt)
        await self._outbox.retry_at(row, token, attempt, when)

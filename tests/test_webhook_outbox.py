"""Outbound events through the outbox: queued with the fact, delivered by the dispatcher.

Real parts only: the ledger on SQLite and PostgreSQL (tests/test_ledger.py's engine), HTTP
receivers in the test process that verify every signature (tests/test_webhooks.py), and
the dispatcher as the worker runs it. Retry schedules are shortened through the
dispatcher's constructor, never by waiting out the real two hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from temporalio.testing import WorkflowEnvironment

from duecourse.domain.actor import SYSTEM
from duecourse.domain.entries import EventRecorded, StageChanged
from duecourse.domain.events import DELIVERY_SCHEDULE, RetrySchedule
from duecourse.domain.money import Money
from duecourse.runtime import build_worker
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.outbox import WebhookOutbox
from duecourse.store.owners import LoanOwners
from duecourse.store.webhooks import Webhook, WebhookStore
from duecourse.temporal.contracts import OpenLoan, RecordEntries
from duecourse.webhooks.delivery import WebhookSender
from duecourse.webhooks.dispatcher import OutboxDispatcher
from tests.conftest import settings_for_tests
from tests.test_ledger import NOW, open_case
from tests.test_ledger import engine as ledger_engine
from tests.test_webhooks import Receiver, serving, until

db = ledger_engine
"""SQLite, and PostgreSQL when one answers."""

FAST = RetrySchedule(first_delay=timedelta(milliseconds=20), backoff=2.0,
                     longest_delay=timedelta(milliseconds=80), attempts=4)
"""The production schedule's shape, in milliseconds and four attempts."""

DISPATCHER = "webhook-dispatcher"  # the dispatcher task's name


def stage(key: str = "stage:1", from_stage: str | None = None,
          to_stage: str | None = "REMINDER", outcome: str | None = None) -> StageChanged:
    return StageChanged(key=key, occurred_at=NOW, actor=SYSTEM, from_stage=from_stage,
                        to_stage=to_stage, outcome=outcome, reason="handed over",
                        days_past_due=3)


def announced(cmd: OpenLoan, *entries: StageChanged | EventRecorded,
              outstanding: str | None = "1000.00") -> RecordEntries:
    """A batch as the workflow writes it: with the balance its events carry (None: as
    written outside a loan's workflow, announcing nothing)."""
    return RecordEntries(
        case_id=cmd.case_id, workflow_id=cmd.workflow_id, loan_id=cmd.loan.loan_id,
        entries=list(entries),
        outstanding=None if outstanding is None else Money.of(outstanding, "CNY"))


@contextlib.asynccontextmanager
async def dispatching(engine: AsyncEngine, schedule: RetrySchedule = FAST,
                      sender: WebhookSender | None = None,
                      batch: int = 20) -> AsyncIterator[OutboxDispatcher]:
    store = WebhookStore(engine, allow_private=True)
    dispatcher = OutboxDispatcher(store, sender, schedule=schedule, poll_seconds=0.05,
                                  batch=batch)
    async with dispatcher.running():
        yield dispatcher


@dataclass
class Ledgered:
    """A ledger with one open case, and its webhooks (private addresses allowed)."""

    ledger: Ledger
    store: WebhookStore
    cmd: OpenLoan

    async def subscribe(self, receiver: Receiver, events: tuple[str, ...] = ("*",),
                        owner: str = "p-a") -> Webhook:
        hook, receiver.secret = await self.store.register(owner, receiver.url, list(events))
        return hook

    async def queue(self, *entries: StageChanged) -> None:
        await self.ledger.record_entries(announced(self.cmd, *entries))


async def ledgered(engine: AsyncEngine) -> Ledgered:
    ledger = Ledger(engine)
    return Ledgered(ledger, WebhookStore(engine, allow_private=True), await open_case(ledger))


async def outbox(engine: AsyncEngine) -> list[dict[str, object]]:
    return await Ledger(engine).rows(t.webhook_outbox)


async def outbox_drained(engine: AsyncEngine, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await outbox(engine):
        assert loop.time() < deadline, "outbox rows left undelivered"
        await asyncio.sleep(0.05)


def dispatcher_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == DISPATCHER]


# ---------------------------------------------------------------------- queueing
async def test_a_stage_change_is_delivered_signed_and_once_even_when_recorded_again(
        db: AsyncEngine) -> None:
    r = await ledgered(db)
    entries = announced(r.cmd, stage())
    async with serving(Receiver()) as receiver:
        hook = await r.subscribe(receiver, ("loan.stage_changed",))
        assert await r.ledger.record_entries(entries) == 1
        assert await r.ledger.record_entries(entries) == 0, "a retry before the delivery"
        [row] = await outbox(db)
        assert (row["event_id"], row["webhook_id"], row["attempts"]) == (
            "case-1:stage:1", hook.webhook_id, 0)
        async with dispatching(db):
            await until(lambda: receiver.accepted, what="the delivery")
            await outbox_drained(db)
            assert await r.ledger.record_entries(entries) == 0, "a retry after it"
            assert await outbox(db) == []
            await asyncio.sleep(0.3)  # several polls: nothing more is posted

    assert receiver.bad_signatures == []
    assert receiver.seen == [("case-1:stage:1", 200)]
    [event] = receiver.accepted
    assert (event.type, event.loan_id, event.workflow_id) == (
        "loan.stage_changed", r.cmd.loan.loan_id, r.cmd.workflow_id)
    assert (event.data.to_stage, event.data.outstanding, event.data.currency) == (
        "REMINDER", Decimal("1000.00"), "CNY")
    [delivery] = await r.store.deliveries(event_id="case-1:stage:1")
    assert (delivery.webhook_id, delivery.status, delivery.attempts,
            delivery.last_status_code) == (hook.webhook_id, "delivered", 1, 200)


async def test_no_webhook_wanting_an_event_means_no_outbox_row(db: AsyncEngine) -> None:
    r = await ledgered(db)
    await LoanOwners(db).claim("platform-a", [r.cmd.loan.loan_id])
    paid, _ = await r.store.register("platform-a", "https://a.example/paid", ["loan.paid"])
    gone, _ = await r.store.register("platform-a", "https://a.example/gone", ["*"])
    assert await r.store.disable(gone.webhook_id)
    await r.store.register("platform-b", "https://b.example/all", ["*"])  # not b's loan
    await r.queue(stage())
    assert await outbox(db) == [], "nobody subscribed: no row, no work"

    wanted, _ = await r.store.register("platform-a", "https://a.example/all", ["*"])
    await r.ledger.record_entries(announced(
        r.cmd, stage("stage:2", "REMINDER", "NEGOTIATION"), outstanding=None))
    assert await outbox(db) == [], "without a balance, a batch announces nothing"
    await r.ledger.record_entries(announced(
        r.cmd, EventRecorded(key="event:1", occurred_at=NOW, actor=SYSTEM,
                             event="contact_outcome", details={}),
        stage("closed", "NEGOTIATION", None, "PAID")))
    assert sorted((row["event_id"], row["webhook_id"]) for row in await outbox(db)) == sorted([
        ("case-1:closed", paid.webhook_id), ("case-1:closed", wanted.webhook_id)]), \
        "only stage changes announce events, to the webhooks that want them"


async def test_a_platforms_loans_reach_only_its_own_webhooks(db: AsyncEngine) -> None:
    r = await ledgered(db)
    lenders = await open_case(r.ledger, "case-9")  # nobody claims it: the lender's own
    async with serving(Receiver()) as mine, serving(Receiver()) as theirs:
        a = await r.subscribe(mine, owner="platform-a")
        b = await r.subscribe(theirs, owner="platform-b")
        owners = LoanOwners(db)
        loan = r.cmd.loan.loan_id
        await owners.claim("platform-a", [loan])
        assert await owners.claim("platform-b", [loan]) == [], "the first claim wins"
        assert (await owners.owner_of(loan), await owners.owner_of(
            lenders.loan.loan_id)) == ("platform-a", None)
        await r.queue(stage("closed", "NEGOTIATION", None, "PAID"))
        await r.ledger.record_entries(announced(lenders, stage()))
        async with dispatching(db):
            await outbox_drained(db)
    assert mine.accepted_ids() == Counter({"case-1:closed": 1, "case-9:stage:1": 1})
    assert theirs.accepted_ids() == Counter({"case-9:stage:1": 1})
    assert sorted((d.event_id, d.webhook_id) for d in await r.store.deliveries(
        event_id="case-9:stage:1")) == sorted([("case-9:stage:1", a.webhook_id),
                                               ("case-9:stage:1", b.webhook_id)])


async def test_a_webhook_disabled_after_its_event_was_queued_gets_nothing(
        db: AsyncEngine) -> None:
    r = await ledgered(db)
    async with serving(Receiver()) as receiver:
        hook = await r.subscribe(receiver)
        await r.queue(stage())
        assert len(await outbox(db)) == 1
        assert not await r.store.disable(hook.webhook_id, owner="someone-else")
        assert await r.store.disable(hook.webhook_id, owner="p-a")
        assert not await r.store.disable(hook.webhook_id)
        async with dispatching(db):
            await outbox_drained(db)
    assert receiver.seen == []
    assert await r.store.deliveries(event_id="case-1:stage:1") == []


# ---------------------------------------------------------------------- retries
async def test_a_retry_posts_only_to_the_webhooks_still_owed_the_event(
        db: AsyncEngine) -> None:
    r = await ledgered(db)
    async with serving(Receiver()) as ok, serving(Receiver(fail_first=1)) as flaky:
        a = await r.subscribe(ok, ("loan.paid",), owner="p-a")
        b = await r.subscribe(flaky, owner="p-b")
        elsewhere, _ = await r.store.register("p-c", ok.url, ["loan.stage_changed"])
        await r.queue(stage("closed", "NEGOTIATION", None, "PAID"))
        async with dispatching(db):
            await outbox_drained(db)

    assert ok.seen == [("case-1:closed", 200)]
    assert flaky.seen == [("case-1:closed", 500), ("case-1:closed", 200)]
    assert ok.bad_signatures == flaky.bad_signatures == []
    rows = {d.webhook_id: d for d in await r.store.deliveries(event_id="case-1:closed")}
    assert set(rows) == {a.webhook_id, b.webhook_id}, f"{elsewhere} is not subscribed"
    assert (rows[a.webhook_id].attempts, rows[b.webhook_id].attempts) == (1, 2)
    assert rows[b.webhook_id].last_status_code == 200


async def test_a_receiver_failing_then_recovering_is_retried_and_delivered(
        db: AsyncEngine) -> None:
    r = await ledgered(db)
    async with serving(Receiver(fail_first=2)) as receiver:
        await r.subscribe(receiver)
        await r.queue(stage())
        async with dispatching(db):
            await outbox_drained(db)

    assert receiver.seen == [("case-1:stage:1", 500)] * 2 + [("case-1:stage:1", 200)]
    assert receiver.bad_signatures == []
    [delivery] = await r.store.deliveries(event_id="case-1:stage:1")
    assert (delivery.status, delivery.attempts, delivery.last_status_code,
            delivery.last_error) == ("delivered", 3, 200, None)


async def test_a_receiver_that_never_recovers_is_given_up_after_the_schedule(
        db: AsyncEngine) -> None:
    r = await ledgered(db)
    async with serving(Receiver(status=503)) as receiver:
        hook = await r.subscribe(receiver)
        await r.queue(stage())
        async with dispatching(db):
            await outbox_drained(db)
            await asyncio.sleep(0.3)  # longer than the schedule's longest pause

    assert receiver.seen == [("case-1:stage:1", 503)] * FAST.attempts
    [delivery] = await r.store.deliveries(event_id="case-1:stage:1")
    assert (delivery.webhook_id, delivery.status, delivery.attempts,
            delivery.delivered_at) == (hook.webhook_id, "failed", 4, None)
    assert delivery.last_error == "HTTP 503: nope (gave up after 4 attempts)"


async def test_an_unreachable_receiver_is_retried_then_given_up(db: AsyncEngine) -> None:
    r = await ledgered(db)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    await r.store.register("p-a", dead, ["*"])
    await r.queue(stage())
    async with dispatching(db):
        await outbox_drained(db)
    [delivery] = await r.store.deliveries(event_id="case-1:stage:1")
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == (
        "failed", FAST.attempts, None)
    assert delivery.last_error is not None and "ConnectError" in delivery.last_error
    assert delivery.last_error.endswith(f"(gave up after {FAST.attempts} attempts)")


def test_the_schedule_is_two_seconds_doubling_to_ten_minutes_for_about_two_hours() -> None:
    delays = [DELIVERY_SCHEDULE.delay_after(n).total_seconds()
              for n in range(1, DELIVERY_SCHEDULE.attempts)]
    assert delays[:10] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600]
    assert set(delays[9:]) == {600} and len(delays) == 19, "20 attempts, 19 pauses"
    assert timedelta(hours=1, minutes=50) < timedelta(seconds=sum(delays)) < timedelta(
        hours=2)
    assert DELIVERY_SCHEDULE.delay_after(10_000) == timedelta(minutes=10)


async def test_queued_deliveries_survive_a_dispatcher_restart(db: AsyncEngine) -> None:
    r = await ledgered(db)
    slow = RetrySchedule(first_delay=timedelta(seconds=0.5), attempts=5)
    async with serving(Receiver(fail_first=1)) as receiver:
        await r.subscribe(receiver)
        await r.queue(stage())
        async with dispatching(db, schedule=slow):
            await until(lambda: receiver.seen, what="the first attempt")
            await asyncio.sleep(0.1)  # the attempt recorded, its retry not due yet
        assert not dispatcher_tasks(), "stopped with its context"
        [row] = await outbox(db)
        assert (row["attempts"], row["claim"]) == (1, None), "kept, free for anyone"
        async with dispatching(db, schedule=slow):  # a new process, say
            await outbox_drained(db)

    assert [answer for _, answer in receiver.seen] == [500, 200]
    [delivery] = await r.store.deliveries(event_id="case-1:stage:1")
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


# ---------------------------------------------------------------------- claims
async def test_a_claim_is_exclusive_until_its_lease_runs_out(db: AsyncEngine) -> None:
    r = await ledgered(db)
    for name in ("a", "b", "c"):
        await r.store.register("p-a", f"https://{name}.example/hook", ["*"])
    await r.queue(stage())
    first, second = WebhookOutbox(db), WebhookOutbox(db)
    (token_a, rows_a), (_, rows_b) = await asyncio.gather(
        first.claim_due(2, timedelta(hours=1)), second.claim_due(2, timedelta(hours=1)))
    ids_a, ids_b = {row.row_id for row in rows_a}, {row.row_id for row in rows_b}
    assert not ids_a & ids_b and len(ids_a | ids_b) == 3, "every row claimed once"
    assert (await first.claim_due(10, timedelta(hours=1)))[1] == [], "all held"

    # a holder that stops hands its rows back at once ...
    await first.release(token_a)
    token, rows = await first.claim_due(10, timedelta(0))  # a lease that runs out at once
    assert {row.row_id for row in rows} == ids_a
    # ... and a lease that runs out leaves the row to the next claim, while the late
    # writes of the earlier holder change nothing
    newer, again = await second.claim_due(10, timedelta(hours=1))
    assert {row.row_id for row in again} == ids_a
    row = rows[0]
    assert not await first.settle(row, token)
    assert not await first.retry_at(row, token, 9, NOW)
    assert await second.settle(row, newer)
    assert row.row_id not in {left["id"] for left in await outbox(db)}


class SlowReceiver(Receiver):
    """Answers after a pause, and notes which dispatcher posted (its User-Agent)."""

    senders: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        self.senders = Counter()

    async def handle(self, request: Request) -> Response:
        await asyncio.sleep(0.03)
        self.senders[request.headers.get("User-Agent", "")] += 1
        return await super().handle(request)


def named_sender(engine: AsyncEngine, name: str) -> WebhookSender:
    return WebhookSender(WebhookStore(engine, allow_private=True), lambda: httpx.AsyncClient(
        timeout=10, headers={"User-Agent": name}))


async def test_two_dispatchers_on_one_database_never_deliver_a_row_twice(
        db: AsyncEngine) -> None:
    r = await ledgered(db)
    async with serving(SlowReceiver()) as receiver:
        receiver.secret = "one-secret-for-all-of-them"  # so the receiver verifies each
        for n in range(3):
            await r.store.register(f"p-{n}", receiver.url, ["*"], receiver.secret)
        async with (dispatching(db, sender=named_sender(db, "one"), batch=3),
                    dispatching(db, sender=named_sender(db, "two"), batch=3)):
            for n in range(8):
                await r.queue(stage(f"stage:{n}"))
            await outbox_drained(db)

    assert receiver.bad_signatures == []
    assert len(receiver.seen) == 24, "each of 8 events posted once to each of 3 webhooks"
    assert receiver.accepted_ids() == Counter({f"case-1:stage:{n}": 3 for n in range(8)})
    assert set(receiver.senders) == {"one", "two"}, "both dispatchers worked"
    deliveries = await r.store.deliveries(loan_id=r.cmd.loan.loan_id)
    assert len(deliveries) == 24 and {d.attempts for d in deliveries} == {1}


# ---------------------------------------------------------------------- faults
@contextlib.asynccontextmanager
async def outbox_vanished(engine: AsyncEngine) -> AsyncIterator[None]:
    """The outbox table is gone from the real database while inside: every claim fails as
    if the ledger were unreachable, until it comes back."""
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE webhook_outbox RENAME TO webhook_outbox_away"))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE webhook_outbox_away RENAME TO "
                                    "webhook_outbox"))


async def test_the_dispatcher_survives_a_ledger_outage(
        db: AsyncEngine, capsys: pytest.CaptureFixture[str]) -> None:
    r = await ledgered(db)
    async with serving(Receiver()) as receiver:
        await r.subscribe(receiver)
        await r.queue(stage())
        async with dispatching(db):
            async with outbox_vanished(db):
                await asyncio.sleep(1.0)  # several tries meet the outage
                assert [task.done() for task in dispatcher_tasks()] == [False]
                assert receiver.seen == []
            await outbox_drained(db)

    assert receiver.accepted_ids() == Counter({"case-1:stage:1": 1})
    out = capsys.readouterr().out
    assert out.count("ledger unreachable; webhook deliveries wait for it") == 1, out
    assert out.count("ledger reachable again; webhook deliveries resume") == 1, out


class HangingReceiver(Receiver):
    """Keeps its first `hangs` requests waiting `for_seconds` before answering."""

    def __init__(self, hangs: int, for_seconds: float) -> None:
        super().__init__()
        self.hangs, self.for_seconds = hangs, for_seconds

    async def handle(self, request: Request) -> Response:
        if self.hangs > 0:
            self.hangs -= 1
            await asyncio.sleep(self.for_seconds)
        return await super().handle(request)


async def test_a_receiver_slower_than_the_deadline_counts_an_attempt_and_is_tried_again(
        db: AsyncEngine) -> None:
    """An attempt never outlives the claim: a POST still waiting at the deadline is an
    attempt that got no answer, recorded, and retried on the schedule."""
    r = await ledgered(db)
    sender = WebhookSender(WebhookStore(db, allow_private=True), deadline=0.3)
    async with serving(HangingReceiver(hangs=1, for_seconds=3.0)) as receiver:
        await r.subscribe(receiver)
        await r.queue(stage())
        async with dispatching(db, sender=sender):
            await outbox_drained(db)
    [delivery] = await r.store.deliveries(event_id="case-1:stage:1")
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert receiver.accepted_ids() == Counter({"case-1:stage:1": 1})


async def test_an_unreadable_row_is_given_up_after_the_schedule_and_stops_nothing(
        db: AsyncEngine) -> None:
    """A row no code of ours can read (a body from a future version, a hand edit) is
    counted like a failed attempt and dropped at the end of the schedule, instead of being
    retried every lease for ever; the rows behind it are delivered."""
    r = await ledgered(db)
    async with serving(Receiver()) as receiver:
        hook = await r.subscribe(receiver)
        async with db.begin() as conn:
            await conn.execute(insert(t.webhook_outbox).values(
                event_id="case-1:garbled", webhook_id=hook.webhook_id, body="{not json",
                attempts=0, next_attempt_at=datetime.now(UTC), created_at=datetime.now(UTC)))
        await r.queue(stage())
        async with dispatching(db):
            await outbox_drained(db)
    assert receiver.accepted_ids() == Counter({"case-1:stage:1": 1})
    assert await r.store.deliveries(event_id="case-1:garbled") == []


async def test_a_stopping_dispatcher_hands_back_the_rows_it_still_holds(
        db: AsyncEngine) -> None:
    """Rows a pass held when the worker stopped are due again at once, not a lease later."""
    r = await ledgered(db)
    async with serving(HangingReceiver(hangs=1, for_seconds=5.0)) as receiver:
        await r.subscribe(receiver)
        await r.queue(stage())
        dispatcher = OutboxDispatcher(WebhookStore(db, allow_private=True),
                                      schedule=FAST, poll_seconds=0.05)
        async with dispatcher.running(grace=0.0):
            await until(lambda: receiver.hangs == 0, what="the first POST to be waiting")
        [row] = await outbox(db)
    assert row["claim"] is None and row["attempts"] == 0
    assert row["next_attempt_at"] <= datetime.now(UTC)


# ---------------------------------------------------------------------- the worker
async def test_the_worker_runs_the_dispatcher_and_stops_it(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    r = Ledgered(ledger, WebhookStore(ledger.engine, allow_private=True),
                 await open_case(ledger))
    settings = settings_for_tests().model_copy(update={"webhook_poll_seconds": 60})
    worker = build_worker(ts_env.client, ledger, settings, f"tq-{uuid4().hex}")
    async with serving(Receiver()) as receiver:
        await r.subscribe(receiver)
        async with worker:
            await until(lambda: dispatcher_tasks(), what="the dispatcher to start")
            await r.queue(stage())
            # this process's own writes wake it: no waiting for the (minute-long) poll
            await until(lambda: receiver.accepted, what="the delivery", within=15)
        assert not dispatcher_tasks(), "stopped with the worker"
    assert receiver.accepted_ids() == Counter({"case-1:stage:1": 1})

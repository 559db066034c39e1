"""Outbound events to platforms' webhooks: signed, retried, each delivered exactly once.

The receivers are real HTTP servers (uvicorn) in the test process that verify every
signature with the registered secret; the loans run on the time-skipping test server, and
their events reach the receivers over real sockets through the worker's outbox dispatcher.
Dispatcher-specific behaviour (routing, retry schedule, leases, outages) is in
test_webhook_outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from duecourse.domain.actor import SYSTEM
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import CancelRequest, ContactOutcomeReport, ContactResult
from duecourse.domain.case.state import Outcome
from duecourse.domain.entries import LedgerEntry, PaymentRecorded, StageChanged
from duecourse.domain.events import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    EVENT_TYPES,
    SIGNATURE_HEADER,
    EventData,
    OutboundEvent,
    events_for,
    sign,
    signature_header,
    verify,
)
from duecourse.domain.policy import Channel
from duecourse.netguard import is_public, literal_problem
from duecourse.policies import load_policy
from duecourse.store import tables as t
from duecourse.store.webhooks import FINAL, WebhookStore
from duecourse.webhooks.delivery import WebhookSender
from tests.conftest import Harness
from tests.factories import AGENT, make_loan, payment
from tests.test_ledger import engine as ledger_engine

db = ledger_engine
"""The ledger tests' engine fixture as `db`: SQLite, and PostgreSQL when one answers."""

STANDARD = load_policy("standard").model_copy(update={"segments": {}})  # timing as written
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


# ---------------------------------------------------------------------- a real receiver
@dataclass
class Receiver:
    """A platform's endpoint: verifies each delivery, answers `fail_first` deliveries with
    500 (forcing a retry), then `status`."""

    fail_first: int = 0
    status: int = 200
    secret: str = ""
    url: str = ""
    seen: list[tuple[str, int]] = field(default_factory=list)  # (event id, answer)
    bad_signatures: list[str] = field(default_factory=list)
    accepted: list[OutboundEvent] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        event = OutboundEvent.model_validate_json(body)
        signed = verify(self.secret, request.headers.get(SIGNATURE_HEADER, ""), body,
                        datetime.now(UTC))
        if (not signed or request.headers.get(EVENT_ID_HEADER) != event.event_id
                or request.headers.get(EVENT_TYPE_HEADER) != event.type):
            self.bad_signatures.append(event.event_id)
            answer = 401
        elif len(self.seen) < self.fail_first:
            answer = 500
        else:
            answer = self.status
        self.seen.append((event.event_id, answer))
        if 200 <= answer < 300:
            self.accepted.append(event)
        return Response("ok" if answer < 300 else "nope", status_code=answer)

    def accepted_ids(self) -> Counter[str]:
        return Counter(e.event_id for e in self.accepted)


@contextlib.asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, held from the start: no race
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started, what="the receiver to listen")
        receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()


async def until(check: Callable[[], object], harness: Harness | None = None,
                what: str = "", within: float = 60.0) -> None:
    """Poll `check` until true. With a harness, each pause also lets the test server's
    clock move (the workflows' timers); the pauses are short because the dispatcher's
    retries wait in real time, whatever the server's clock does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        if harness is not None:
            await harness.env.sleep(timedelta(seconds=1))
        else:
            await asyncio.sleep(0.05)


async def settled(h: Harness, store: WebhookStore, event_id: str) -> None:
    """Until every delivery of the event is final and nothing is left owed for it."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        rows = await store.deliveries(event_id=event_id)
        if rows and all(d.status in FINAL for d in rows) \
                and not await h.ledger.rows(t.webhook_outbox, event_id=event_id):
            return
        assert asyncio.get_running_loop().time() < deadline, f"{event_id} never settled"
        await h.env.sleep(timedelta(seconds=1))  # lets the test server's clock move


# ---------------------------------------------------------------------- end to end
async def test_each_event_reaches_the_receiver_exactly_once_after_a_forced_retry(
        harness: Harness) -> None:
    h = harness
    store = WebhookStore(h.ledger.engine, allow_private=True)
    async with serving(Receiver(fail_first=1)) as receiver:
        hook, receiver.secret = await store.register("platform-a", receiver.url, ["*"])
        loan = make_loan(await h.env.get_current_time(), dpd=1)
        assert (await h.client.start(loan, STANDARD)).started
        # the hand-over is the first delivery the receiver ever sees, and it answers 500
        await until(lambda: receiver.seen, what="the hand-over delivery")
        await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
            channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT,
            note="answered"))
        await h.client.report_payment(loan.loan_id, payment("1000.00"))
        assert (await h.client.result(loan.loan_id)).outcome == "PAID"
        await until(lambda: len(receiver.accepted_ids()) == 3, h, "three accepted events")
        transitions = await h.rows(t.stage_transitions, loan_id=loan.loan_id)
        keys = [r["idempotency_key"] for r in transitions]
        for key in keys:
            await settled(h, store, key)

    assert receiver.bad_signatures == []
    first = receiver.seen[0][0]
    assert receiver.seen[0][1] == 500 and first == keys[0]
    assert receiver.accepted_ids() == Counter(keys), "each event accepted exactly once"
    case_id = transitions[0]["case_id"]
    assert keys == [f"{case_id}:stage:1", f"{case_id}:stage:2", f"{case_id}:closed"]
    # arrival order is not event order (the retried hand-over came last)
    handover, negotiation, paid = ({e.event_id: e for e in receiver.accepted}[k] for k in keys)
    assert (handover.type, handover.data.from_stage, handover.data.to_stage) == (
        "loan.stage_changed", None, "REMINDER")
    assert (negotiation.type, negotiation.data.from_stage, negotiation.data.to_stage) == (
        "loan.stage_changed", "REMINDER", "NEGOTIATION")
    assert (paid.type, paid.data.outcome, paid.data.outstanding, paid.data.currency) == (
        "loan.paid", "PAID", Decimal("0"), "CNY")
    assert handover.data.outstanding == Decimal("1000.00")
    assert all(e.loan_id == loan.loan_id and e.workflow_id == loan.workflow_id
               for e in receiver.accepted)

    deliveries = {d.event_id: d for d in await store.deliveries(loan_id=loan.loan_id)}
    assert set(deliveries) == set(keys)
    assert all(d.status == "delivered" and d.webhook_id == hook.webhook_id
               and d.last_status_code == 200 and d.delivered_at is not None
               for d in deliveries.values())
    assert [deliveries[k].attempts for k in keys] == [2, 1, 1]
    assert await h.rows(t.webhook_outbox) == [], "nothing left owed"


async def test_a_gone_webhook_is_not_retried(harness: Harness) -> None:
    h = harness
    store = WebhookStore(h.ledger.engine, allow_private=True)
    async with serving(Receiver(status=410)) as receiver:
        hook, receiver.secret = await store.register("platform-a", receiver.url,
                                                     ["loan.cancelled"])
        loan = make_loan(await h.env.get_current_time(), dpd=1)
        await h.client.start(loan, STANDARD)
        await h.client.cancel(loan.loan_id, CancelRequest(reason="handed back"))
        assert (await h.client.result(loan.loan_id)).outcome == "CANCELLED"
        case_id = (await h.rows(t.collection_cases, loan_id=loan.loan_id))[0]["case_id"]
        closed = f"{case_id}:closed"
        await settled(h, store, closed)  # the delivery is over: no retry

    assert receiver.seen == [(closed, 410)], "only the subscribed event, posted once"
    assert await h.rows(t.webhook_outbox) == []
    [delivery] = await store.deliveries(loan_id=loan.loan_id)
    assert (delivery.webhook_id, delivery.status, delivery.attempts,
            delivery.last_status_code) == (hook.webhook_id, "failed", 1, 410)
    assert delivery.last_error is not None and delivery.last_error.startswith("HTTP 410")


# ---------------------------------------------------------------------- store and sender
def _event(key: str = "closed", type_: str = "loan.paid") -> OutboundEvent:
    return OutboundEvent(
        event_id=f"case-1:{key}", type=type_, loan_id="L-1",  # type: ignore[arg-type]
        workflow_id="collection-L-1", occurred_at=NOW,
        data=EventData(from_stage="NEGOTIATION", to_stage=None, outcome="PAID",
                       reason="paid in full", days_past_due=12,
                       outstanding=Decimal("0.00"), currency="CNY"))


async def test_register_list_and_disable_webhooks(db: AsyncEngine) -> None:
    store = WebhookStore(db)
    a, secret_a = await store.register("p-a", "https://a.example/hook",
                                       ["loan.paid", "loan.paid", "loan.settled"])
    b, secret_b = await store.register("p-b", "http://b.example:8080/h", ["*", "loan.paid"],
                                       secret="s" * 24)
    assert a.webhook_id.startswith("wh_") and len(secret_a) >= 40 and secret_b == "s" * 24
    assert a.events == ["loan.paid", "loan.settled"] and b.events == ["*"]
    assert "secret" not in a.model_dump() and secret_a not in repr(a)
    assert [w.webhook_id for w in await store.list()] == [a.webhook_id, b.webhook_id]
    assert [w.webhook_id for w in await store.list("p-b")] == [b.webhook_id]
    assert [w.webhook_id for w in await store.active_for("loan.paid")] == [a.webhook_id,
                                                                           b.webhook_id]
    assert [w.webhook_id for w in await store.active_for("loan.written_off")] == [
        b.webhook_id]
    assert (await store.active_for("loan.paid"))[0].secret == secret_a
    assert await store.disable(a.webhook_id)
    assert [w.webhook_id for w in await store.active_for("loan.paid")] == [b.webhook_id]
    [listed] = await store.list("p-a")
    assert listed.disabled_at is not None and listed.disabled_at.tzinfo is not None
    assert await store.list("p-a", include_disabled=False) == []
    assert (await store.get(b.webhook_id)) == b and await store.get("wh_nope") is None


@pytest.mark.parametrize(("url", "events", "secret", "problem"), [
    ("ftp://a.example/x", ["*"], None, "http"),
    ("/relative/path", ["*"], None, "http"),
    ("https:///no-host", ["*"], None, "http"),
    ("https://a.example/x", [], None, "at least one"),
    ("https://a.example/x", ["loan.exploded"], None, "unknown event"),
    ("https://a.example/x", ["*"], "short", "16 to 128"),
    ("https://a.example:99999/x", ["*"], None, "invalid port"),
])
async def test_register_refuses_bad_webhooks(db: AsyncEngine, url: str, events: list[str],
                                             secret: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        await WebhookStore(db).register("p-a", url, events, secret)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "https://api.localhost/hook",
    "http://10.1.2.3/hook", "http://192.168.0.10/hook", "http://172.16.5.5/hook",
    "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/hook", "http://[::1]/hook",
    "http://[fd00::1]/hook", "http://[::ffff:192.168.0.1]/hook", "http://0.0.0.0/hook",
    "http://[::127.0.0.1]/hook", "http://[64:ff9b::a00:5]/hook", "http://[2002:a00:5::]/h",
    "http://192.0.0.192/hook", "http://public@127.0.0.1/hook",
])
async def test_register_refuses_non_public_addresses_unless_allowed(db: AsyncEngine,
                                                                   url: str) -> None:
    with pytest.raises(ValueError, match="public address"):
        await WebhookStore(db).register("p-a", url, ["*"])
    hook, _ = await WebhookStore(db, allow_private=True).register("p-a", url, ["*"])
    assert hook.url == url


def test_public_addresses_are_public() -> None:
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"):
        assert is_public(ipaddress.ip_address(address)), address
    assert literal_problem("https://hooks.example.com/x") is None


async def test_an_impossible_host_is_recorded_as_failed_not_raised(db: AsyncEngine) -> None:
    """A host that can never resolve is that webhook's failure for good, recorded like any
    answer (an exception would leave its outbox row to be tried again forever)."""
    store = WebhookStore(db, allow_private=True)
    local, _ = await store.register("p-a", "http://127.0.0.1:9/hook", ["*"])
    bad, _ = await store.register("p-a", "http://a..b/hook", ["*"])
    guarded = WebhookSender(WebhookStore(db))
    outcomes = [await guarded.deliver(_event(), hook, 1, last_try=False)
                for hook in (local, bad)]
    assert [(o.webhook_id, o.status) for o in outcomes] == [
        (local.webhook_id, "failed"), (bad.webhook_id, "failed")]
    rows = {d.webhook_id: d for d in await store.deliveries(event_id=_event().event_id)}
    assert rows[bad.webhook_id].last_error is not None
    assert "not a valid host name" in rows[bad.webhook_id].last_error
    assert rows[local.webhook_id].status == "failed"


async def test_a_name_resolving_to_a_private_address_gets_no_request(db: AsyncEngine) -> None:
    """DNS can point a registered name anywhere later: each delivery checks it again."""
    async with serving(Receiver()) as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        hook, _ = await WebhookStore(db, allow_private=True).register("p-a", url, ["*"])
        guarded = WebhookSender(WebhookStore(db))  # production default: public only
        outcome = await guarded.deliver(_event(), hook, 1, last_try=False)
    assert (outcome.webhook_id, outcome.status) == (hook.webhook_id, "failed")
    assert receiver.seen == []
    [row] = await WebhookStore(db).deliveries(event_id=_event().event_id)
    assert row.status == "failed" and row.last_error is not None
    assert "refused" in row.last_error and "not a public address" in row.last_error


async def test_a_delivered_row_is_never_downgraded_by_a_late_attempt(db: AsyncEngine) -> None:
    store = WebhookStore(db)
    hook, _ = await store.register("p-a", "https://a.example/x", ["*"])
    event = _event()
    await store.record_attempt(event, hook.webhook_id, "pending", 503, "HTTP 503")
    assert not await store.already_delivered(event.event_id, hook.webhook_id)
    await store.record_attempt(event, hook.webhook_id, "delivered", 200)
    assert await store.already_delivered(event.event_id, hook.webhook_id)
    await store.record_attempt(event, hook.webhook_id, "pending", None, "ReadTimeout")
    [row] = await store.deliveries(event_id=event.event_id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "delivered", 2, 200, None)
    assert row.delivered_at is not None and row.delivered_at.tzinfo is not None
    assert (await store.deliveries(loan_id="L-1")) == [row]
    with pytest.raises(ValueError):
        await store.deliveries()


# ---------------------------------------------------------------------- pure parts
def _stage(key: str, from_stage: str | None, to_stage: str | None,
           outcome: str | None = None) -> StageChanged:
    return StageChanged(key=key, occurred_at=NOW, actor=SYSTEM, from_stage=from_stage,
                        to_stage=to_stage, outcome=outcome, reason="why", days_past_due=9)


def test_events_for_maps_stage_changes_only() -> None:
    entries: list[LedgerEntry] = [
        _stage("stage:1", None, "REMINDER"),
        PaymentRecorded(key="payment:P1", occurred_at=NOW, actor=SYSTEM, reference="P1",
                        amount=Decimal("10.00"), currency="CNY", paid_at=NOW,
                        applied=Decimal("10.00"), overpaid=Decimal("0"),
                        outstanding_after=Decimal("990.00")),
        _stage("stage:2", "REMINDER", "NEGOTIATION"),
        _stage("stage:3", "NEGOTIATION", "LEGAL"),
        _stage("stage:4", "LEGAL", "NEGOTIATION"),
        _stage("closed", "NEGOTIATION", None, "WRITTEN_OFF"),
    ]
    events = events_for(entries, "run-9", "L-9", "collection-L-9", Decimal("990.00"), "CNY")
    assert [(e.event_id, e.type) for e in events] == [
        ("run-9:stage:1", "loan.stage_changed"),
        ("run-9:stage:2", "loan.stage_changed"),
        ("run-9:stage:3", "loan.escalated_to_legal"),
        ("run-9:stage:4", "loan.stage_changed"),
        ("run-9:closed", "loan.written_off"),
    ]
    closed = events[-1]
    assert closed.model_dump(mode="json") == {
        "event_id": "run-9:closed", "type": "loan.written_off", "loan_id": "L-9",
        "workflow_id": "collection-L-9", "occurred_at": "2026-03-02T09:30:00Z",
        "data": {"from_stage": "NEGOTIATION", "to_stage": None, "outcome": "WRITTEN_OFF",
                 "reason": "why", "days_past_due": 9, "outstanding": "990.00",
                 "currency": "CNY"}}
    assert events_for([], "r", "L", "w", Decimal("1"), "CNY") == []


def test_a_stage_change_announces_the_balance_it_happened_at() -> None:
    """A stage change and a later partial payment can reach the ledger in one batch (the
    payment signalled while the loop awaited a child start or a ledger outage): the event
    must say the balance when the stage changed, not the batch's."""
    loan = make_loan(NOW, dpd=20)
    c, _ = Collection.begin(loan, load_policy("standard"), NOW, case_id="run-7")
    entries = c.end_reminder(NOW) + c.apply_payment(payment("300.00"), NOW)
    assert c.state.outstanding == Decimal("700.00")
    [event] = [e for e in events_for(entries, "run-7", loan.loan_id, loan.workflow_id,
                                     c.state.outstanding, "CNY")
               if e.data.to_stage == "NEGOTIATION"]
    assert event.data.outstanding == Decimal("1000.00")


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_has_its_own_event(outcome: Outcome) -> None:
    [event] = events_for([_stage("closed", "REMINDER", None, outcome.value)], "r", "L", "w",
                         Decimal("0"), "USD")
    assert event.type == f"loan.{outcome.value.lower()}" and event.type in EVENT_TYPES


def test_signature_matches_the_documented_scheme() -> None:
    body = '{"event_id":"x"}'
    expected = hmac.new(b"topsecret", b'1764000000.{"event_id":"x"}',
                        hashlib.sha256).hexdigest()
    assert sign("topsecret", 1764000000, body) == expected
    assert sign("topsecret", 1764000000, body.encode()) == expected
    assert signature_header("topsecret", 1764000000, body) == f"t=1764000000,v1={expected}"


def test_verify_accepts_only_the_exact_body_secret_and_a_recent_time() -> None:
    body = b'{"event_id":"case-1:closed","type":"loan.paid"}'
    ts = int(NOW.timestamp())
    header = signature_header("s3cret-s3cret-s3cret", ts, body)
    assert verify("s3cret-s3cret-s3cret", header, body, NOW)
    assert verify("s3cret-s3cret-s3cret", header, body, NOW + timedelta(minutes=4))
    assert not verify("s3cret-s3cret-s3cret", header, body.replace(b"paid", b"PAID"), NOW)
    assert not verify("another-secret-entirely", header, body, NOW)
    assert not verify("s3cret-s3cret-s3cret", header, body, NOW + timedelta(minutes=6)), \
        "an old delivery replayed later"
    assert not verify("s3cret-s3cret-s3cret", header, body, NOW - timedelta(minutes=6))
    assert verify("s3cret-s3cret-s3cret", header, body, NOW + timedelta(minutes=8),
                  tolerance=timedelta(minutes=10))
    forged_time = header.replace(f"t={ts}", f"t={ts + 60}")
    assert not verify("s3cret-s3cret-s3cret", forged_time, body, NOW)
    rotated = f"t={ts},v1={'0' * 64},v1={sign('s3cret-s3cret-s3cret', ts, body)}"
    assert verify("s3cret-s3cret-s3cret", rotated, body, NOW)
    for malformed in ("", "garbage", f"t={ts}", "v1=abc", f"t=soon,v1={'0' * 64}"):
        assert not verify("s3cret-s3cret-s3cret", malformed, body, NOW)

"""Webhook delivery connects to the address it checked (no DNS-rebinding window).

The host name `hooks.pinning.test` exists only in the resolver each test hands the sender
(the real seam `WebhookSender(resolve=...)`, which production fills with the system's
resolver): the system's DNS cannot resolve it, so a delivery that reaches a receiver can
only have connected to an address our resolver gave and our check saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from duecourse.domain.events import EventData, OutboundEvent
from duecourse.store import connect, migrate
from duecourse.store.webhooks import Webhook, WebhookStore
from duecourse.webhooks.delivery import WebhookSender

HOST = "hooks.pinning.test"
NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


def _event() -> OutboundEvent:
    return OutboundEvent(
        event_id="case-pin:closed", type="loan.paid", loan_id="L-pin",
        workflow_id="collection-L-pin", occurred_at=NOW,
        data=EventData(from_stage="NEGOTIATION", to_stage=None, outcome="PAID",
                       reason="paid in full", days_past_due=12,
                       outstanding=Decimal("0.00"), currency="CNY"))


@dataclass
class Receiver:
    """Records the Host header of every POST it answers."""

    hosts: list[str] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        await request.body()
        self.hosts.append(request.headers.get("host", ""))
        return Response("ok")


@contextlib.asynccontextmanager
async def serving(receiver: Receiver, address: str, port: int = 0,
                  tls: tuple[Path, Path] | None = None) -> AsyncIterator[int]:
    """`receiver` listening on `address`; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, port))
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    config = uvicorn.Config(app, log_level="warning", lifespan="off",
                            ssl_certfile=str(tls[0]) if tls else None,
                            ssl_keyfile=str(tls[1]) if tls else None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(400):
            if server.started:
                break
            await asyncio.sleep(0.025)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


class Rebinding:
    """A resolver whose answers change: the first lookup gets `first`, any later one
    `later` (what an attacker's DNS does between a check and a connection)."""

    def __init__(self, first: Sequence[str], later: Sequence[str]) -> None:
        self.first, self.later, self.lookups = list(first), list(later), 0

    async def __call__(self, host: str, port: int) -> list[str]:
        assert host == HOST
        self.lookups += 1
        return self.first if self.lookups == 1 else self.later


async def _hook(db: AsyncEngine, url: str) -> Webhook:
    hook, _ = await WebhookStore(db, allow_private=True).register("p-pin", url, ["*"])
    return hook


async def test_delivery_goes_to_the_checked_address_when_dns_answers_differently(
        db: AsyncEngine) -> None:
    checked, rebound = Receiver(), Receiver()
    async with serving(checked, "127.0.0.1") as port, \
            serving(rebound, "127.0.0.2", port):
        resolver = Rebinding(first=["127.0.0.1"], later=["127.0.0.2"])
        hook = await _hook(db, f"http://{HOST}:{port}/hook")
        sender = WebhookSender(WebhookStore(db, allow_private=True), resolve=resolver)
        outcome = await sender.deliver(_event(), hook, 1, last_try=False)
    assert (outcome.status, outcome.code) == ("delivered", 200), outcome.error
    assert resolver.lookups == 1, "the name is looked up once, for the check"
    assert checked.hosts == [f"{HOST}:{port}"], "Host names the webhook's host, not the IP"
    assert rebound.hosts == []


async def test_an_address_that_refuses_the_connection_falls_to_the_next_checked_one(
        db: AsyncEngine) -> None:
    receiver = Receiver()
    async with serving(receiver, "127.0.0.1") as port:
        resolver = Rebinding(first=["127.0.0.3", "127.0.0.1"], later=["127.0.0.2"])
        hook = await _hook(db, f"http://{HOST}:{port}/hook")
        sender = WebhookSender(WebhookStore(db, allow_private=True), resolve=resolver)
        outcome = await sender.deliver(_event(), hook, 1, last_try=False)
    assert outcome.status == "delivered", outcome.error
    assert (resolver.lookups, len(receiver.hosts)) == (1, 1)


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["93.184.216.34", "10.0.0.5"],
                                    ["93.184.216.34", "::ffff:127.0.0.1"]])
async def test_a_name_resolving_to_any_private_address_is_refused_unless_allowed(
        db: AsyncEngine, answer: list[str]) -> None:
    receiver = Receiver()
    async with serving(receiver, "127.0.0.1") as port:
        hook = await _hook(db, f"http://{HOST}:{port}/hook")
        guarded = WebhookSender(WebhookStore(db), resolve=Rebinding(answer, answer))
        refused = await guarded.deliver(_event(), hook, 1, last_try=False)
        assert refused.status == "failed"
        assert refused.error is not None and refused.error.startswith("refused: ")
        assert "not a public address" in refused.error
        assert receiver.hosts == [], "a refused name gets no request"
        allowed = WebhookSender(WebhookStore(db, allow_private=True),
                                resolve=Rebinding(["127.0.0.1"], ["127.0.0.2"]))
        assert (await allowed.deliver(_event(), hook, 2, last_try=False)).status == \
            "delivered"
    assert receiver.hosts == [f"{HOST}:{port}"]


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` only (no IP address in it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
            .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.mark.parametrize("certified", [HOST, "someone-else.test"])
async def test_tls_is_verified_for_the_host_name_not_the_address(
        db: AsyncEngine, tmp_path: Path, certified: str) -> None:
    """The connection goes to 127.0.0.1, yet the certificate is checked against the name:
    one for the name passes (so SNI and verification used it), one for another fails."""
    tls = _certificate(tmp_path, certified)
    trusted = ssl.create_default_context(cafile=str(tls[0]))
    receiver = Receiver()
    async with serving(receiver, "127.0.0.1", tls=tls) as port:
        hook = await _hook(db, f"https://{HOST}:{port}/hook")
        sender = WebhookSender(WebhookStore(db, allow_private=True),
                               lambda: httpx.AsyncClient(verify=trusted, timeout=5),
                               resolve=Rebinding(["127.0.0.1"], ["127.0.0.2"]))
        outcome = await sender.deliver(_event(), hook, 1, last_try=False)
    if certified == HOST:
        assert outcome.status == "delivered", outcome.error
        assert receiver.hosts == [f"{HOST}:{port}"]
    else:
        assert outcome.status == "pending" and receiver.hosts == []
        assert outcome.error is not None and "CERTIFICATE_VERIFY_FAILED" in outcome.error


def test_the_test_host_is_not_in_real_dns() -> None:
    """The premise of this module: only our resolver knows the name."""
    with pytest.raises(OSError):
        socket.getaddrinfo(HOST, 80)
    assert ipaddress.ip_address("127.0.0.2").is_loopback

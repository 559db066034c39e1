"""`duecourse dev --sms`: a local SMS gateway stub that echoes each message to the console.

A dev tool only. It speaks the generic gateway profile (duecourse/channels/sms_profiles.py)
on 127.0.0.1 - `POST /v1/messages` with the bearer token, the same idempotency key
answering with the same id, and `GET /v1/messages/{key}` for the lookup - so the real SMS
adapter, its E.164 check and its segment count are what the demo exercises. Messages are
kept in memory only; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from duecourse.cli.common import CliError

SENDER = "+15005550006"  # a sender the stub accepts; never a real number


class StubUnavailable(CliError):
    """The stub cannot start; the message says what to do."""


@dataclass(frozen=True)
class StubSms:
    id: str
    to: str
    text: str
    accepted_at: datetime


@dataclass
class SmsStub:
    """The gateway's state: messages by idempotency key, and where it listens."""

    token: str
    echo: Callable[[StubSms], None]
    port: int = 0

    def __post_init__(self) -> None:
        self.messages: dict[str, StubSms] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/messages"

    def _authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.token}".encode())

    async def send(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) and body.get(k)
                for k in ("to", "text", "idempotency_key")):
            return JSONResponse({"error": "to, text and idempotency_key are required"},
                                status_code=422)
        key = body["idempotency_key"]
        known = self.messages.get(key)
        if known is None:  # the same key again is the same message, as gateways do
            known = StubSms(id=f"stub-{len(self.messages) + 1}", to=body["to"],
                            text=body["text"], accepted_at=datetime.now(UTC))
            self.messages[key] = known
            self.echo(known)
        return JSONResponse({"id": known.id}, status_code=201)

    async def find(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        known = self.messages.get(request.path_params["key"])
        if known is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"id": known.id, "accepted_at": known.accepted_at.isoformat()})


@asynccontextmanager
async def sms_stub(port: int, echo: Callable[[StubSms], None]) -> AsyncIterator[SmsStub]:
    """Serve the stub on 127.0.0.1:`port` while inside (a fresh token each time)."""
    stub = SmsStub(token=secrets.token_urlsafe(24), echo=echo, port=port)
    app = Starlette(routes=[Route("/v1/messages", stub.send, methods=["POST"]),
                            Route("/v1/messages/{key:path}", stub.find, methods=["GET"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # it could not listen
            raise StubUnavailable(f"the SMS stub cannot listen on 127.0.0.1:{port}: "
                                  "choose another --sms-port")
        await asyncio.sleep(0.02)
    try:
        yield stub
    finally:
        server.should_exit = True
        await task

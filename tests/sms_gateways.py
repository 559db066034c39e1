"""SMS gateways for tests: real HTTP servers on loopback speaking each profile's API (the
generic JSON contract in duecourse/channels/sms_profiles.py, and Twilio's Messages API).

Each checks credentials, honours the idempotency key as real gateways do (the same key
again answers with the same message, and no second message exists), and can be told to
answer the next requests with an error status, as a provider in trouble does."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs
from uuid import uuid4

import phonenumbers
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-for-tests"
GENERIC_TOKEN = "generic-bearer-token-for-tests"


@dataclass
class Sms:
    """A message the gateway accepted."""

    id: str
    to: str
    sender: str
    text: str
    key: str
    status_callback: str
    accepted_at: datetime


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    path: str  # as sent, percent-encoding kept
    headers: dict[str, str]
    body: bytes


@dataclass
class Stand:
    """What both gateways share: the messages, the requests, forced failures."""

    url: str = ""
    messages: dict[str, Sms] = field(default_factory=dict)  # by idempotency key
    requests: list[Seen] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses for the next sends

    async def seen(self, request: Request) -> Seen:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        seen = Seen(request.method, raw_path.decode(),
                    {k.lower(): v for k, v in request.headers.items()}, await request.body())
        self.requests.append(seen)
        return seen

    def accept(self, key: str, prefix: str, **fields: Any) -> tuple[Sms, bool]:
        """The message under `key`, created unless it exists; and whether it is new."""
        if key in self.messages:
            return self.messages[key], False
        sms = Sms(id=f"{prefix}{uuid4().hex}", key=key, accepted_at=datetime.now(UTC),
                  **fields)
        self.messages[key] = sms
        return sms, True


def valid_e164(number: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


@dataclass
class GenericGateway(Stand):
    """The generic profile: POST /v1/messages, GET /v1/messages/{key}, bearer token."""

    token: str = GENERIC_TOKEN

    def routes(self) -> list[Route]:
        return [Route("/v1/messages", self.post, methods=["POST"]),
                Route("/v1/messages/{key:path}", self.get, methods=["GET"])]

    def _authorised(self, seen: Seen) -> bool:
        return seen.headers.get("authorization") == f"Bearer {self.token}"

    async def post(self, request: Request) -> Response:
        seen = await self.seen(request)
        if not self._authorised(seen):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        if self.fail_next:
            return JSONResponse({"error": "forced"}, status_code=self.fail_next.pop(0))
        body = await request.json()
        key = seen.headers.get("idempotency-key", "")
        if not key or key != body.get("idempotency_key"):
            return JSONResponse({"error": "idempotency_key_mismatch"}, status_code=400)
        if not valid_e164(body.get("to", "")):
            return JSONResponse({"error": "invalid_to"}, status_code=422)
        sms, new = self.accept(key, "gw-", to=body["to"], sender=body["from"],
                               text=body["text"], status_callback=body["status_callback"])
        return JSONResponse({"id": sms.id}, status_code=201 if new else 200)

    async def get(self, request: Request) -> Response:
        seen = await self.seen(request)
        if not self._authorised(seen):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        sms = self.messages.get(request.path_params["key"])
        if sms is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse({"id": sms.id, "accepted_at": sms.accepted_at.isoformat()})


@dataclass
class TwilioGateway(Stand):
    """Twilio's Messages API: form posts, basic auth, I-Twilio-Idempotency-Token."""

    sid: str = TWILIO_SID
    token: str = TWILIO_TOKEN
    refused: dict[str, int] = field(default_factory=dict)  # number -> Twilio error code

    def routes(self) -> list[Route]:
        return [Route("/2010-04-01/Accounts/{sid}/Messages.json", self.post,
                      methods=["POST"])]

    def _error(self, status: int, code: int, message: str) -> Response:
        return JSONResponse({"code": code, "message": message, "status": status,
                             "more_info": f"https://www.twilio.com/docs/errors/{code}"},
                            status_code=status)

    async def post(self, request: Request) -> Response:
        seen = await self.seen(request)
        basic = base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if seen.headers.get("authorization") != f"Basic {basic}" \
                or request.path_params["sid"] != self.sid:
            return self._error(401, 20003, "Authenticate")
        if self.fail_next:
            status = self.fail_next.pop(0)
            return self._error(status, 20429 if status == 429 else 20500, "forced")
        form = {k: v[-1] for k, v in parse_qs(seen.body.decode()).items()}
        to = str(form.get("To", ""))
        if not valid_e164(to) or to in self.refused:  # Twilio quotes the number
            return self._error(400, self.refused.get(to, 21211),
                               f"The 'To' number {to} is not a valid phone number.")
        key = seen.headers.get("i-twilio-idempotency-token") or uuid4().hex
        sms, _ = self.accept(key, "SM", to=to, sender=str(form.get("From", "")),
                             text=str(form.get("Body", "")),
                             status_callback=str(form.get("StatusCallback", "")))
        return JSONResponse({"sid": sms.id, "account_sid": self.sid, "to": sms.to,
                             "from": sms.sender, "body": sms.text, "status": "queued"},
                            status_code=201)


class Gateway(Protocol):
    url: str

    def routes(self) -> list[Route]: ...


G = TypeVar("G", bound=Gateway)


@contextlib.asynccontextmanager
async def serving(gateway: G) -> AsyncIterator[G]:
    """The gateway listening on a free loopback port; `gateway.url` is its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, held from the start: no race
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=gateway.routes()),
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the gateway stopped before it listened"
            await asyncio.sleep(0.02)
        gateway.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        yield gateway
    finally:
        server.should_exit = True
        await task
        sock.close()

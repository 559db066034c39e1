"""A dialer for tests: a real HTTP server on loopback speaking the contract in
duecourse/channels/dialer.py (POST /v1/calls, GET /v1/calls/{key}, bearer token), and the
signed result callback a dialer posts to our API when a call ends.

Like a real dialer it checks the token, honours the idempotency key (the same key again
answers with the same call, and nobody is dialled twice), refuses a call without the
decision that allowed it, and can be told to answer the next requests with an error."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from duecourse.domain.events import signature_header
from tests.sms_gateways import Seen, valid_e164

DIALER_TOKEN = "dialer-bearer-token-for-tests"


@dataclass
class Call:
    """A call the dialer accepted."""

    id: str
    to: str
    key: str
    script: str
    language: str
    decision: dict[str, str]
    result_callback: str
    accepted_at: datetime


@dataclass
class Dialer:
    url: str = ""
    token: str = DIALER_TOKEN
    calls: dict[str, Call] = field(default_factory=dict)  # by idempotency key
    requests: list[Seen] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses for the next calls
    before_answer: Callable[[Call], Awaitable[None]] | None = None
    """Run when a new call is taken, before the POST is answered: a dialer whose call
    ends at once posts its result before we have read its id."""

    def routes(self) -> list[Route]:
        return [Route("/v1/calls", self.post, methods=["POST"]),
                Route("/v1/calls/{key:path}", self.get, methods=["GET"])]

    async def _seen(self, request: Request) -> Seen:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        seen = Seen(request.method, raw_path.decode(),
                    {k.lower(): v for k, v in request.headers.items()}, await request.body())
        self.requests.append(seen)
        return seen

    async def post(self, request: Request) -> Response:
        seen = await self._seen(request)
        if seen.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        if self.fail_next:
            return JSONResponse({"error": "forced"}, status_code=self.fail_next.pop(0))
        body = json.loads(seen.body)
        key = seen.headers.get("idempotency-key", "")
        if not key or key != body.get("idempotency_key"):
            return JSONResponse({"error": "idempotency_key_mismatch"}, status_code=400)
        if not valid_e164(body.get("to", "")):
            return JSONResponse({"error": "invalid_to"}, status_code=422)
        if (body.get("decision") or {}).get("verdict") != "allowed":
            return JSONResponse({"error": "no_decision"}, status_code=422)
        if key in self.calls:
            return JSONResponse({"id": self.calls[key].id}, status_code=200)
        call = Call(id=f"call-{uuid4().hex}", to=body["to"], key=key, script=body["script"],
                    language=body["language"], decision=body["decision"],
                    result_callback=body["result_callback"], accepted_at=datetime.now(UTC))
        self.calls[key] = call
        if self.before_answer is not None:
            await self.before_answer(call)
        return JSONResponse({"id": call.id}, status_code=201)

    async def get(self, request: Request) -> Response:
        seen = await self._seen(request)
        if seen.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        call = self.calls.get(request.path_params["key"])
        if call is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse({"id": call.id, "accepted_at": call.accepted_at.isoformat()})


async def post_result(api: httpx.AsyncClient, secret: str | None, payload: dict[str, Any],
                      *, at: int | None = None) -> httpx.Response:
    """The dialer's callback as it reaches our API (`secret` None: unsigned)."""
    body = json.dumps(payload)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Duecourse-Signature"] = signature_header(
            secret, at if at is not None else int(time.time()), body)
    return await api.post("/v1/inbound/dialer/result", content=body, headers=headers)

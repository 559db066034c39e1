"""The codec server: Temporal's remote codec protocol over the payload codec, so the
Temporal UI and CLI show sealed payloads decoded to the people allowed to read them.

`POST /codec/decode` and `POST /codec/encode` take and answer Temporal `Payloads` in
protobuf JSON (`{"payloads": [{"metadata": {k: base64}, "data": base64}]}`); the
`X-Namespace` header is kept in the audit. The caller needs an API key whose role is in
DUECOURSE_CODEC_ROLES: `Authorization: Bearer dc_...` (the CLI's `--codec-auth`), or, as the
Temporal UI cannot send a header, the key as a path segment: `/codec/ui/<key>/decode`. That
path is never logged as it is: uvicorn's access log (and our own lines) see
`/codec/ui/<redacted>/...`. Every request, allowed or refused, is written to the ledger's
audit (`duecourse.store.payload_access`) before it is answered: a decode that cannot be
audited is not answered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import Payload, Payloads

from duecourse.api.problems import problem_response
from duecourse.domain.actor import Role
from duecourse.security.codec_cors import CodecCors
from duecourse.security.key_paths import redact_path
from duecourse.security.payload_codec import (
    ENCODING,
    KEY_ID_FIELD,
    EncryptionCodec,
    PayloadKeyUnknown,
    PayloadTampered,
)
from duecourse.security.payload_keys import PayloadKeyError, ring_from_settings
from duecourse.settings import Settings
from duecourse.store.keys import KeyStore
from duecourse.store.payload_access import Operation, PayloadAccess, PayloadAccessLog

log = structlog.get_logger("duecourse.codec")

PREFIX = "/codec"
_SHAPE = '{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}'

EngineOf = Callable[[Request], AsyncEngine]


class RedactPathCredentials(logging.Filter):
    """Rewrites uvicorn's access-log lines (and any other record it is attached to) so a
    credential in a path (a codec key, a page or opt-out token) never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a
                                for a in record.args)
        return True


class CodecSettingsError(ValueError):
    """DUECOURSE_CODEC_ROLES or DUECOURSE_CODEC_CORS_ORIGINS cannot be used."""


@dataclass(frozen=True)
class CodecPolicy:
    roles: tuple[Role, ...]
    origins: frozenset[str]


def codec_policy(settings: Settings) -> CodecPolicy:
    """Who may use the codec server and from which browser origins, from the settings."""
    roles: list[Role] = []
    for name in (r.strip().lower() for r in settings.codec_roles.split(",")):
        if not name:
            continue
        try:
            roles.append(Role(name))
        except ValueError:
            raise CodecSettingsError(
                f"DUECOURSE_CODEC_ROLES names {name!r}, which is not a role: use a "
                f"comma-separated list of {', '.join(Role)}") from None
    origins = frozenset(o.strip().rstrip("/") for o in settings.codec_cors_origins.split(",")
                        if o.strip())
    for origin in origins:
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            raise CodecSettingsError(
                f"DUECOURSE_CODEC_CORS_ORIGINS names {origin!r}, which is not an origin: "
                "write scheme://host[:port], e.g. http://localhost:8233")
    return CodecPolicy(tuple(dict.fromkeys(roles)), origins)


class _Refusal(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def _parse(body: bytes) -> list[Payload]:
    try:
        message = json_format.Parse(body or b"{}", Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError, TypeError, ValueError):
        raise _Refusal(400, "Malformed body", "the body is not Temporal payloads in protobuf "
                       f"JSON; send {_SHAPE}") from None
    return list(message.payloads)


def _sealed_with(payloads: Sequence[Payload]) -> list[str]:
    """The payload key ids named by the sealed payloads (never their content)."""
    ids = {p.metadata[KEY_ID_FIELD].decode(errors="replace") for p in payloads
           if p.metadata.get("encoding") == ENCODING and KEY_ID_FIELD in p.metadata}
    return sorted(ids)


def _token(request: Request, in_path: str | None) -> str | None:
    if in_path:
        return in_path
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-key") or None


class CodecService:
    """The codec behind the routes: the payload keys (loaded on first use, so an API
    without them still serves everything else), the policy, and where the ledger is."""

    def __init__(self, settings: Settings, policy: CodecPolicy, engine_of: EngineOf) -> None:
        self.settings, self.policy, self.engine_of = settings, policy, engine_of
        self._codec: EncryptionCodec | None = None

    def codec(self) -> EncryptionCodec:
        if self._codec is None:
            try:
                self._codec = EncryptionCodec(ring_from_settings(self.settings))
            except PayloadKeyError as err:
                raise _Refusal(503, "Codec unavailable", str(err)) from None
        return self._codec

    async def handle(self, request: Request, operation: Operation,
                     in_path: str | None) -> Response:
        path = redact_path(request.url.path)
        try:
            return await self._handle(request, operation, in_path, path)
        except Exception:  # a bug: logged with the key redacted, never with the raw path
            log.exception("codec request failed", path=path, operation=operation)
            return problem_response(path, 500, "Internal error",
                                    "an unexpected error occurred; it has been logged")

    async def _handle(self, request: Request, operation: Operation, in_path: str | None,
                      path: str) -> Response:
        engine = self.engine_of(request)
        # what the caller says about itself is kept, but never more than a column's worth
        entry = PayloadAccess(operation=operation,
                              namespace=_clipped(request.headers.get("x-namespace"), 255),
                              origin=_clipped(request.headers.get("origin"), 255))
        malformed: _Refusal | None = None
        payloads: list[Payload] = []
        try:
            payloads = _parse(await request.body())
        except _Refusal as refusal:
            malformed = refusal
        entry.payload_count = len(payloads)
        if operation == "decode":  # unverified metadata: a bounded, clipped list of ids
            entry.payload_key_ids = [_clipped(k, 64) or "" for k in _sealed_with(payloads)][:16]
        try:
            await self._authorise(request, engine, entry, in_path)
            if malformed is not None:
                raise malformed
            codec = self.codec()
            if operation == "encode":
                entry.payload_key_ids = [codec.ring.newest[0]] if payloads else []
                answered = await codec.encode(payloads)
            else:
                try:
                    answered = await codec.decode(payloads)
                except (PayloadKeyUnknown, PayloadTampered) as err:
                    raise _Refusal(400, "Payload cannot be decoded", str(err)) from None
        except _Refusal as refusal:
            entry.status, entry.reason = refusal.status, refusal.detail
            unaudited = await self._audit(engine, entry, path)
            if unaudited is not None:
                return unaudited
            headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
            return problem_response(path, refusal.status, refusal.title, refusal.detail,
                                    headers=headers)
        entry.status = 200
        unaudited = await self._audit(engine, entry, path)
        if unaudited is not None:
            return unaudited  # nothing decoded leaves without its audit row
        return JSONResponse(json_format.MessageToDict(Payloads(payloads=answered)))

    async def _authorise(self, request: Request, engine: AsyncEngine, entry: PayloadAccess,
                         in_path: str | None) -> None:
        token = _token(request, in_path)
        if not token:
            raise _Refusal(401, "Missing or invalid API key",
                           "send an API key as 'Authorization: Bearer <key>', or in the path "
                           f"as {PREFIX}/ui/<key>/{entry.operation}")
        key = await KeyStore(engine).verify(token)
        if key is None:
            known = await PayloadAccessLog(engine).key_named_by(token)
            if known is not None:
                entry.key_id, entry.key_name, entry.role = known.key_id, known.name, known.role
            raise _Refusal(401, "Missing or invalid API key", "the API key is unknown or revoked")
        entry.key_id, entry.key_name, entry.role = key.key_id, key.name, key.role.value
        if key.role not in self.policy.roles:
            role = key.role.value
            article = "an" if role[0] in "aeiou" else "a"
            allowed = ", ".join(r.value for r in self.policy.roles) or "none"
            raise _Refusal(403, "Forbidden", f"{article} {role} key may not read or seal "
                           f"payloads; allowed: {allowed} (DUECOURSE_CODEC_ROLES)")
        if entry.origin is not None and entry.origin not in self.policy.origins:
            raise _Refusal(403, "Forbidden", f"the origin {entry.origin!r} may not call the "
                           "codec server: add it to DUECOURSE_CODEC_CORS_ORIGINS")
        entry.allowed = True

    async def _audit(self, engine: AsyncEngine, entry: PayloadAccess,
                     path: str) -> Response | None:
        """Write the audit row; a problem to answer instead when the ledger refuses it."""
        try:
            await PayloadAccessLog(engine).record(entry)
        except (SQLAlchemyError, OSError) as err:
            log.warning("codec audit not written", path=path, error=err.__class__.__name__)
            return problem_response(path, 503, "Audit unavailable",
                                    "the codec server cannot write its audit to the ledger, "
                                    "so it answers nothing; check the ledger database")
        return None


def _clipped(text: str | None, limit: int) -> str | None:
    return text[:limit] if text is not None else None


def _from_api(request: Request) -> AsyncEngine:
    return request.app.state.services.ledger.engine  # type: ignore[no-any-return]


def router(service: CodecService) -> APIRouter:
    """The four routes: decode and encode, each with the key in a header or in the path
    (never in a query string, which proxies log)."""
    routes = APIRouter(prefix=PREFIX, include_in_schema=False)

    def add(operation: Operation) -> None:
        async def with_header(request: Request) -> Response:
            return await service.handle(request, operation, None)

        async def in_path(request: Request, token: str) -> Response:
            return await service.handle(request, operation, token)

        routes.add_api_route(f"/{operation}", with_header, methods=["POST"],
                             name=f"codec_{operation}")
        routes.add_api_route(f"/ui/{{token}}/{operation}", in_path, methods=["POST"],
                             name=f"codec_ui_{operation}")

    add("decode")
    add("encode")
    return routes


def install(app: FastAPI, settings: Settings, engine_of: EngineOf | None = None) -> None:
    """Mount the codec routes at /codec with their CORS; `engine_of` finds the ledger
    (default: the API's services)."""
    policy = codec_policy(settings)
    app.include_router(router(CodecService(settings, policy, engine_of or _from_api)))
    app.add_middleware(CodecCors, origins=policy.origins, prefix=PREFIX,
                       redact=redact_path)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactPathCredentials) for f in access.filters):
        access.addFilter(RedactPathCredentials())

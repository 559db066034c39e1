"""RFC 9457 problem details for every error, so clients get one shape and a reason.

Every reason is a sentence a person can act on: pydantic's and Starlette's own phrasing
("String should match pattern ...", "Field required", "There was an error parsing the
body") is translated here, and request bodies are read by `BodyGuard` before the app so a
hostile one is answered 4xx with what was wrong instead of reaching a 5xx.
"""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.service import RPCError

from duecourse.domain.money import CurrencyError
from duecourse.plain_words import count_of, dotted, field_words, plain_errors
from duecourse.security.key_paths import redact_path
from duecourse.security.payload_codec import PayloadKeyUnknown, PayloadTampered
from duecourse.temporal.client import ActionRejected, LoanClosed, LoanNotFound

log = structlog.get_logger("duecourse.api")

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class ProblemError(Exception):
    """Raise to answer with a problem (status, title, detail, optionally the errors)."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors


def problem_response(path: str, status: int, title: str, detail: str,
                     errors: list[dict[str, Any]] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    # the one URL that carries a credential (the UI's codec endpoint) is never echoed back
    body = Problem(title=title, status=status, detail=detail, instance=redact_path(path),
                   errors=errors)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type=MEDIA_TYPE, headers=headers)


def _response(request: Request, status: int, title: str, detail: str,
              errors: list[dict[str, Any]] | None = None,
              headers: dict[str, str] | None = None) -> JSONResponse:
    return problem_response(redact_path(request.url.path), status, title, detail, errors,
                            headers)


# ------------------------------------------------------------------ request bodies
MAX_DEPTH = 32
"""Levels of nesting a body may have: the deepest request (a batch of loans) needs 5."""
MAX_NUMBER_LENGTH = 100
"""Characters a JSON number may have; money travels as decimal strings anyway."""
_AS_STRINGS = 'send amounts as decimal strings like "1250.50"'


class _Unreadable(ValueError):
    """The body is JSON no one should have to read; the message says why."""


def _size(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n // size} {unit}" if n % size == 0 else f"{n / size:.1f} {unit}"
    return count_of(n, "byte")


def _constant(name: str) -> Any:
    raise _Unreadable(f"the request body contains {name}, which is not a JSON number: "
                      f"{_AS_STRINGS}")


def _short(text: str) -> str:
    if len(text.lstrip("-")) > MAX_NUMBER_LENGTH:
        raise _Unreadable(f"the request body has a number {len(text.lstrip('-'))} digits "
                          f"long; at most {MAX_NUMBER_LENGTH} are read: {_AS_STRINGS}")
    return text


def _integer(text: str) -> int:
    return int(_short(text))


def _number(text: str) -> float:
    value = float(_short(text))
    if not math.isfinite(value):
        raise _Unreadable(f"the number {text} in the request body is larger than a JSON "
                          f"number can carry: {_AS_STRINGS}")
    return value


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a null character (\\u0000), which text may not contain"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (f"contains an unpaired surrogate (\\u{ord(text[err.start]):04x}), which is "
                "not text")
    return None


def _walk(value: Any) -> tuple[int, str | None]:
    """The body's depth, and the first text in it that no store can keep (with its path)."""
    deepest, problem = 0, None
    stack: list[tuple[Any, tuple[str, ...], int]] = [(value, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, item in items:
                where = (*path, str(key))
                if problem is None and isinstance(key, str) and (bad := _text_problem(key)):
                    problem = f"a field name in {field_words(('body', *path))} {bad}"
                stack.append((item, where, depth + 1))
        elif problem is None and isinstance(node, str) and (bad := _text_problem(node)):
            problem = f"{field_words(('body', *path))} {bad}"
    return deepest, problem


def body_problem(body: bytes) -> tuple[int, str, str] | None:
    """(status, title, sentence) when a JSON body cannot be read or kept, else None."""
    malformed = "Malformed body"
    if b"\x00" in body:
        return 400, malformed, ("the request body contains a null byte: JSON is UTF-8 text "
                                "(write a null character in a string as \\u0000)")
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        return 400, malformed, (f"the request body is not UTF-8 text: byte {err.start + 1} "
                                f"(0x{body[err.start]:02x}) cannot be read; send JSON as UTF-8")
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_number,
                           parse_int=_integer)
    except _Unreadable as err:
        return 400, malformed, str(err)
    except json.JSONDecodeError as err:
        return 400, malformed, (f"the request body is not valid JSON: {err.msg[:1].lower()}"
                                f"{err.msg[1:]} at line {err.lineno} column {err.colno}")
    except RecursionError:
        return 400, malformed, (f"the request body is nested too deeply; at most "
                                f"{MAX_DEPTH} levels are allowed")
    depth, problem = _walk(value)
    if depth > MAX_DEPTH:
        return 400, malformed, (f"the request body is nested {depth} levels deep; at most "
                                f"{MAX_DEPTH} are allowed")
    if problem is not None:
        return 422, "Invalid request", problem
    return None


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


class BodyGuard:
    """Reads each request body before the app (pure ASGI): larger than `max_bytes` is 413;
    a JSON body that is not UTF-8, not JSON, nested absurdly deep or holding NaN or numbers
    beyond a float is 400; text with null characters or lone surrogates, which neither the
    ledger nor Temporal can keep, is 422. FastAPI alone answers the first ones with "There
    was an error parsing the body" and lets the last ones through to fail later."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send, f"is {_size(int(declared))}")
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send,
                                      f"is larger than {_size(self.max_bytes)}")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        refusal = body_problem(body) if body and _is_json(headers.get("content-type")) \
            else None
        if refusal is not None:
            await problem_response(scope["path"], *refusal)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        detail = (f"the request body {size}; the API accepts at most {_size(self.max_bytes)} "
                  "(DUECOURSE_MAX_BODY_BYTES): send many loans as several batches")
        await problem_response(scope["path"], 413, "Body too large", detail)(
            scope, receive, send)


# ------------------------------------------------------------------ handlers
DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    LoanNotFound: (404, "Loan not found"),
    LoanClosed: (409, "Loan closed"),
    ActionRejected: (422, "Action rejected"),
    CurrencyError: (422, "Invalid amount"),
    # a payload this API cannot open: its keys lag the worker's (the message names the id)
    PayloadKeyUnknown: (503, "Payload keys out of date"),
    PayloadTampered: (503, "Payload cannot be opened"),
}
"""Domain errors and the problem each becomes; the message is the precise reason."""


def _domain(code: int, title: str) -> Any:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return _response(request, code, title, str(exc))
    return handle


def _http_detail(request: Request, status: int, detail: str) -> str:
    """Starlette's bare phrases ("Not Found") as sentences."""
    try:
        if detail != HTTPStatus(status).phrase:
            return detail
    except ValueError:  # not a standard status
        return detail
    if status == 404:
        return (f"there is nothing at {redact_path(request.url.path)}; the API's paths are "
                "listed at /docs")
    if status == 405:
        return f"{request.method} is not allowed on {redact_path(request.url.path)}"
    return f"the request was refused ({detail.lower()})"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = plain_errors(exc.errors())
        detail = "; ".join(e["msg"] for e in errors) or "the request is not valid"
        return _response(request, 422, "Invalid request", detail, errors)

    @app.exception_handler(ValidationError)
    async def _domain_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        """A domain model built by a handler refused a value (its loc is not the body's)."""
        errors = plain_errors(exc.errors(include_url=False), where=dotted)
        return _response(request, 422, "Invalid request", "; ".join(e["msg"] for e in errors),
                         errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = str(exc.detail)
        return _response(request, exc.status_code, detail,
                         _http_detail(request, exc.status_code, detail),
                         headers=getattr(exc, "headers", None))

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _response(request, exc.status, exc.title, exc.detail, exc.errors,
                         headers=headers)

    for error, (code, title) in DOMAIN_ERRORS.items():
        app.add_exception_handler(error, _domain(code, title))

    @app.exception_handler(RPCError)
    async def _temporal(request: Request, exc: RPCError) -> JSONResponse:
        log.warning("temporal error", path=redact_path(request.url.path), status=exc.status.name,
                    message=exc.message)
        return _response(request, 503, "Collection engine unavailable",
                         f"Temporal answered {exc.status.name}: {exc.message}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=redact_path(request.url.path))
        return _response(request, 500, "Internal error",
                         "an unexpected error occurred; it has been logged")


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the problem answers an operation can give."""
    titles = {400: "The body is not JSON that can be read", 401: "Missing or invalid API key",
              403: "The key's role may not do this", 404: "Not found",
              409: "The loan's collection has ended",
              413: "The body is larger than the API accepts", 422: "Invalid or refused",
              503: "The collection engine is unavailable"}
    return {code: {"model": Problem, "description": titles[code],
                   "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for code in (400, 401, 403, 413, 422, 503, *codes)}

"""CORS for the codec routes only: the Temporal UI calls them from the browser, from its
own origin, so those origins (and no others) get CORS headers; the rest of the API keeps
none, because no browser page should call it across origins.

A preflight from an allowed origin is answered here (204); from any other origin it is
refused (403) with no CORS header at all, so the browser never sends the request.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from duecourse.api.problems import problem_response

ALLOW_METHODS = "POST"
ALLOW_HEADERS = "content-type, authorization, x-namespace"
MAX_AGE = "600"


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


class CodecCors:
    """Pure ASGI: acts on requests under `prefix` and passes everything else through."""

    def __init__(self, app: ASGIApp, origins: Collection[str], prefix: str,
                 redact: Callable[[str], str]) -> None:
        """`redact` hides what must not be echoed from a path (a key in it)."""
        self.app, self.origins, self.prefix = app, frozenset(origins), prefix
        self.redact = redact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not under(scope["path"], self.prefix):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and origin in self.origins
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            if allowed:
                await self._preflight(origin, send)
            else:
                detail = (f"the origin {origin!r} may not call the codec server: add it to "
                          "DUECOURSE_CODEC_CORS_ORIGINS" if origin else
                          "a preflight request must name its Origin")
                response = problem_response(self.redact(scope["path"]), 403, "Forbidden",
                                            detail)
                await response(scope, receive, send)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out["Access-Control-Allow-Credentials"] = "true"
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, with_cors)

    async def _preflight(self, origin: str, send: Send) -> None:
        headers = [(b"access-control-allow-origin", origin.encode("latin-1")),
                   (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                   (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                   (b"access-control-allow-credentials", b"true"),
                   (b"access-control-max-age", MAX_AGE.encode()),
                   (b"vary", b"Origin"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

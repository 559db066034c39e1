"""A server span per API request, installed by duecourse.observability.tracing when tracing
is on.

Our own few lines rather than opentelemetry-instrumentation-asgi, which records the full
target with its query string and can record headers: this span says only the method, the
route template (`/v1/loans/{loan_id}`: ids are never in the name, a borrower's data never in
the span) and the status. A caller's W3C traceparent is continued, so a platform that
traces its own calls sees ours under them.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_W3C = TraceContextTextMapPropagator()


class RequestSpans:
    """ASGI middleware: HTTP requests only; lifespan and websockets pass untouched."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        status = 500  # what the client gets when the app raises before answering
        with self.tracer.start_as_current_span(
                method, context=_W3C.extract(carrier), kind=SpanKind.SERVER,
                attributes={"http.request.method": method,
                            "url.scheme": scope.get("scheme", "http")},
                record_exception=False, set_status_on_exception=False) as span:

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, sending)
            except Exception as err:
                span.set_attribute("error.type", type(err).__qualname__)
                raise
            finally:
                route = _template(scope)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


def _template(scope: Scope) -> str | None:
    """The matched route's path template (the router sets it in the scope); None for a
    path no route matched, whose raw text may hold anything."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return f"{scope.get('root_path', '')}{path}" if isinstance(path, str) else None

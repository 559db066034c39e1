"""OpenTelemetry traces: an API request, the workflow it starts, its activities, and the
webhook deliveries they queue, in one trace, exported over OTLP/HTTP.

Off unless configured (docs/tracing.md): then no tracer provider exists, Temporal clients
get no interceptor, the API no middleware, and an outbox row no trace context, so tracing
costs nothing. On, each process has one tracer provider per destination, batching spans to
the OTLP endpoint. It is ours, not OpenTelemetry's global one (which can be set only once
per process), so a process - or a test - can flush it, shut it down and build another.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from duecourse import __version__
from duecourse.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
"""Where `DUECOURSE_TRACING=otlp` sends spans when no endpoint is set (a local collector)."""

TRACER_NAME = "duecourse"
SERVICES = {"worker": "duecourse-worker", "api": "duecourse-api", "dev": "duecourse-dev"}
"""service.name by command; any other command is duecourse-cli."""

_W3C = TraceContextTextMapPropagator()


class TracingSettingsError(ValueError):
    """The tracing settings cannot work; the message names the setting to fix."""


@dataclass(frozen=True)
class Exporting:
    """Where this process's spans go, and under which service name."""

    endpoint: str
    service: str


def exporting(settings: Settings) -> Exporting | None:
    """The destination `settings` configure; None when tracing is off."""
    if settings.tracing == "off":
        return None
    endpoint, setting = settings.otlp_traces_endpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    if not endpoint and settings.otlp_endpoint:
        endpoint, setting = (settings.otlp_endpoint.rstrip("/") + "/v1/traces",
                             "OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        if settings.tracing == "auto":
            return None
        endpoint = DEFAULT_ENDPOINT
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise TracingSettingsError(f"{setting} must be an http:// or https:// URL of an OTLP "
                                   f"receiver, not {endpoint!r}")
    return Exporting(endpoint, settings.otel_service_name or default_service_name())


def default_service_name(argv: list[str] | None = None) -> str:
    """duecourse-worker, -api or -dev for those commands (`duecourse worker`, `python
    worker.py`, `python -m duecourse api`), duecourse-cli for any other."""
    args = sys.argv if argv is None else argv
    command = Path(args[0]).stem if args else ""
    if command in ("duecourse", "__main__") and len(args) > 1:
        command = args[1]
    return SERVICES.get(command, "duecourse-cli")


_providers: dict[Exporting, TracerProvider] = {}
_current: list[TracerProvider] = []  # the provider built or asked for last


def tracer_provider(settings: Settings) -> TracerProvider | None:
    """This process's provider for the destination `settings` name (built on first use);
    None when tracing is off."""
    target = exporting(settings)
    if target is None:
        return None
    provider = _providers.get(target)
    if provider is None:
        provider = _providers[target] = _build(target)
    _current[:] = [provider]
    return provider


def _build(target: Exporting) -> TracerProvider:
    # imported here: a process with tracing off never loads the SDK or the exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from duecourse.observability.span_redaction import RedactingExporter

    provider = TracerProvider(resource=Resource.create(
        {SERVICE_NAME: target.service, SERVICE_VERSION: __version__}))
    provider.add_span_processor(BatchSpanProcessor(RedactingExporter(
        OTLPSpanExporter(endpoint=target.endpoint))))
    return provider


def active_tracer() -> trace.Tracer | None:
    """The tracer of the provider this process uses (None: tracing is off), for code that
    has no settings at hand, such as the webhook dispatcher."""
    return _current[0].get_tracer(TRACER_NAME) if _current else None


def temporal_interceptors(settings: Settings) -> list[Any]:
    """The Temporal client/worker interceptors tracing needs; none when tracing is off.
    On a client they also cover every worker built on it."""
    provider = tracer_provider(settings)
    if provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(provider.get_tracer(TRACER_NAME))]


def install(app: FastAPI, settings: Settings) -> None:
    """A span per API request, and the spans flushed when the app shuts down; nothing at
    all when tracing is off."""
    provider = tracer_provider(settings)
    if provider is None:
        return
    from duecourse.observability.request_spans import RequestSpans

    app.add_middleware(RequestSpans, tracer=provider.get_tracer(TRACER_NAME))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def flushing(app: Any) -> AsyncIterator[Any]:
        try:
            async with inner(app) as state:
                yield state
        finally:
            await asyncio.to_thread(flush)

    app.router.lifespan_context = flushing


def flush() -> None:
    """Export the spans still batched (blocking: call it off the event loop when the
    receiver may be served by it)."""
    for provider in list(_providers.values()):
        provider.force_flush()


def shutdown() -> None:
    """Flush and close every provider; tracing starts afresh on the next `connect`."""
    providers = list(_providers.values())
    _providers.clear()
    _current.clear()
    for provider in providers:
        provider.shutdown()


def current_traceparent() -> str | None:
    """The W3C traceparent of the span running now (an activity's, say); None outside one,
    which is always the case with tracing off."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def continuing(traceparent: str | None, name: str,
               attributes: Mapping[str, AttributeValue]) -> Iterator[trace.Span]:
    """A client span named `name` continuing the trace `traceparent` names; without one
    (tracing off where it was queued) or with tracing off here, a span recording nothing."""
    tracer = active_tracer()
    if tracer is None or not traceparent:
        yield trace.INVALID_SPAN
        return
    parent = _W3C.extract({"traceparent": traceparent})
    with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.CLIENT,
                                      attributes=attributes) as span:
        yield span

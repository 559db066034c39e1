"""Exported spans keep an error's type, never its message or stack trace.

Temporal's interceptor records an activity's or workflow's exception on its span (an
`exception` event with the message and stack trace, and the message again as the status
description). A provider's error can quote a recipient's phone or email, and a trace
backend is read by more people than the ledger, so the exporter strips that text: the
event keeps `exception.type`, the status keeps ERROR. The payload codec seals the same
messages in Temporal for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

KEPT = frozenset({"exception.type", "exception.escaped"})
"""What an exception event keeps."""


class RedactingExporter(SpanExporter):
    """Wraps the exporter spans go to."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def redacted(span: ReadableSpan) -> ReadableSpan:
    """`span` without exception messages, stack traces or status description."""
    if not span.status.description and not any(e.name == "exception" for e in span.events):
        return span
    events = [Event(e.name, {k: v for k, v in (e.attributes or {}).items() if k in KEPT},
                    e.timestamp) if e.name == "exception" else e for e in span.events]
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=span.attributes, events=events, links=span.links, kind=span.kind,
        status=Status(span.status.status_code), start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)

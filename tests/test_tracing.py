"""OpenTelemetry traces from an API request through its workflow and activities to the
webhook delivery, exported over OTLP/HTTP.

Everything is real: the Temporal dev server, a worker and the API app on a client built by
`connect` with tracing configured through the standard OTEL_* variables, a webhook
receiver, and an OTLP/HTTP receiver of the test's own (a thread serving POST /v1/traces,
parsing the protobuf export requests) - no in-memory exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.domain.loan import LoanIntake
from duecourse.observability import tracing
from duecourse.observability.request_spans import RequestSpans
from duecourse.runtime import WORKFLOWS, build_worker, sandbox_runner
from duecourse.security.payload_keys import new_key_line, parse_keys
from duecourse.settings import Settings
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.connection import connect
from duecourse.temporal.converter import sealed_data_converter
from tests.conftest import settings_for_tests
from tests.factories import daytime_zone, make_loan
from tests.support.devserver import DevLedger, dev_server_and_ledger
from tests.test_webhooks import Receiver, serving, until

pytestmark = [pytest.mark.devserver, pytest.mark.timeout(180)]

RING = parse_keys(new_key_line(), "the test's payload key")
PII = ("Li Wei", "+8613800138000", "li.wei@example.com", "Nanjing")  # make_loan's borrower
OTEL_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_SERVICE_NAME", "DUECOURSE_TRACING")
SERVER, CLIENT = ProtoSpan.SpanKind.SPAN_KIND_SERVER, ProtoSpan.SpanKind.SPAN_KIND_CLIENT


# ------------------------------------------------------------------ an OTLP/HTTP receiver
@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str  # "" for a trace's root
    name: str
    kind: int
    attributes: dict[str, Any]
    service: str
    events: dict[str, dict[str, Any]]  # by name
    status: str  # the status description


@dataclass
class OtlpReceiver:
    url: str = ""
    posts: int = 0
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            self.posts += 1
            for resource in request.resource_spans:
                service = _attributes(resource.resource.attributes).get("service.name", "")
                self.spans.extend(
                    Span(s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name,
                         s.kind, _attributes(s.attributes), service,
                         {e.name: _attributes(e.attributes) for e in s.events},
                         s.status.message)
                    for scope in resource.scope_spans for s in scope.spans)

    def snapshot(self) -> list[Span]:
        with self.lock:
            return list(self.spans)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@contextlib.contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Its own thread: the exporter posts from the SDK's thread, and a flush called on the
    event loop must not wait on a server that loop would have to serve."""
    receiver = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            receiver.take(ExportTraceServiceRequest.FromString(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


async def flushed_until(otlp: OtlpReceiver, check: Callable[[list[Span]], bool],
                        within: float = 15) -> list[Span]:
    """Flush the batched spans until what arrived passes `check` (or `within` seconds
    passed: then the tests say what is missing)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        await asyncio.to_thread(tracing.flush)
        spans = otlp.snapshot()
        if check(spans) or asyncio.get_running_loop().time() > deadline:
            return spans
        await asyncio.sleep(0.2)


# ------------------------------------------------------------------ the system under test
@dataclass
class Stack:
    http: httpx.AsyncClient  # the API, with a platform's key
    client: Client
    app: FastAPI


@contextlib.asynccontextmanager
async def stack(dev: DevLedger, settings: Settings) -> AsyncIterator[Stack]:
    """The API app and a worker on a fresh task queue, sharing one client from `connect`."""
    client = await connect(settings, address=dev.server.address, ring=RING)
    queue = f"tq-{uuid4().hex}"
    keys = KeyStore(dev.engine)
    _, token = await keys.create(f"platform-{uuid4().hex[:8]}", "platform")
    app = create_app(settings, Services(client=CollectionClient(client, queue),
                                        ledger=dev.ledger, keys=keys, settings=settings))
    async with build_worker(client, dev.ledger, settings, queue), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api",
            headers={"Authorization": f"Bearer {token}"}) as http:
        yield Stack(http, client, app)


async def hand_over_with_a_webhook(s: Stack, hooks: Receiver) -> LoanIntake:
    """Register a webhook, hand a loan over, and wait until its hand-over is delivered."""
    created = await s.http.post("/v1/webhooks", json={"url": hooks.url, "events": ["*"]})
    assert created.status_code == 201, created.text
    hooks.secret = created.json()["secret"]
    now = datetime.now(UTC)
    loan = make_loan(now, dpd=1, tz=daytime_zone(now))
    started = await s.http.post("/v1/loans", json=loan.model_dump(mode="json"))
    assert started.status_code == 201, started.text
    await until(lambda: hooks.accepted, what="the hand-over delivery")
    return loan


def settings_from_environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return settings_for_tests()


@pytest.fixture(scope="module")
async def dev(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevLedger]:
    async with dev_server_and_ledger(tmp_path_factory.mktemp("tracing")) as ledger:
        yield ledger


@dataclass
class Traced:
    loan: LoanIntake
    spans: list[Span]
    history: WorkflowHistory
    settings: Settings


@pytest.fixture(scope="module")
async def traced(dev: DevLedger) -> AsyncIterator[Traced]:
    """One loan handed over through the API with tracing on, its status read, and its
    hand-over delivered to a webhook; the spans the OTLP receiver got, and the history."""
    with otlp_receiver() as otlp:
        with pytest.MonkeyPatch.context() as env:
            settings = settings_from_environment(
                env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=otlp.url,
                OTEL_SERVICE_NAME="duecourse-test")
        try:
            async with serving(Receiver()) as hooks, stack(dev, settings) as s:
                loan = await hand_over_with_a_webhook(s, hooks)
                status = await s.http.get(f"/v1/loans/{loan.loan_id}")
                assert status.status_code == 200, status.text
                spans = await flushed_until(otlp, lambda spans: any(
                    x.name == "DeliverWebhook" for x in spans) and any(
                    x.name.startswith("GET ") for x in spans))
                history = await s.client.get_workflow_handle(loan.workflow_id).fetch_history()
        finally:
            tracing.shutdown()
    yield Traced(loan, spans, history, settings)


def ancestry(span: Span, spans: list[Span]) -> list[Span]:
    """`span`, its parent, its parent's parent... up to the root."""
    by_id = {s.span_id: s for s in spans}
    chain = [span]
    while chain[-1].parent_id:
        parent = by_id.get(chain[-1].parent_id)
        assert parent is not None, f"{chain[-1].name}'s parent never arrived"
        chain.append(parent)
    return chain


# ------------------------------------------------------------------ the tests
async def test_one_trace_from_the_api_request_to_the_webhook_delivery(traced: Traced) -> None:
    spans = traced.spans
    deliveries = [s for s in spans if s.name == "DeliverWebhook"]
    assert len(deliveries) == 1, f"one delivery span, not {[s.name for s in spans]}"
    delivery = deliveries[0]
    chain = ancestry(delivery, spans)
    assert [s.name for s in chain] == [
        "DeliverWebhook", "RunActivity:open_loan", "StartActivity:open_loan",
        "StartWorkflow:LoanCollection", "POST /v1/loans"]
    request, start = chain[-1], chain[-2]
    assert len({s.trace_id for s in chain}) == 1 and request.parent_id == ""
    assert (request.kind, delivery.kind) == (SERVER, CLIENT)
    assert request.attributes["http.route"] == "/v1/loans"
    assert request.attributes["http.response.status_code"] == 201
    assert start.attributes["temporalWorkflowID"] == traced.loan.workflow_id
    # the workflow's own span hangs off the start, beside the activities it schedules
    [run] = [s for s in spans if s.name == "RunWorkflow:LoanCollection"]
    assert (run.trace_id, run.parent_id) == (request.trace_id, start.span_id)
    assert delivery.attributes["duecourse.delivery"] == "delivered"
    assert delivery.attributes["http.response.status_code"] == 200
    assert delivery.attributes["duecourse.event_id"].endswith(":stage:1")
    assert {s.service for s in spans} == {"duecourse-test"}  # OTEL_SERVICE_NAME


async def test_spans_name_route_templates_and_carry_no_borrower_data(traced: Traced) -> None:
    spans = traced.spans
    [status] = [s for s in spans if s.name.startswith("GET ")]
    assert status.name == "GET /v1/loans/{loan_id}"
    assert status.attributes["http.response.status_code"] == 200
    assert [s.name for s in spans if s.parent_id == status.span_id] == ["QueryWorkflow:status"]
    for span in spans:
        text = f"{span.name} {span.attributes} {span.events} {span.status}"
        assert not [p for p in PII if p in text], span


async def test_a_traced_history_replays_with_tracing_off_and_on(traced: Traced) -> None:
    """The interceptor adds headers only: a workflow started with tracing on replays
    without it (and with it, creating no spans on replay)."""
    started = traced.history.events[0].workflow_execution_started_event_attributes
    assert "_tracer-data" in started.header.fields, "the start carried the trace"
    converter = sealed_data_converter(RING)
    await Replayer(workflows=WORKFLOWS, data_converter=converter,
                   workflow_runner=sandbox_runner()).replay_workflow(traced.history)
    with otlp_receiver() as otlp:
        settings = traced.settings.model_copy(update={"otlp_traces_endpoint": otlp.url})
        try:
            interceptors = tracing.temporal_interceptors(settings)
            assert interceptors
            await Replayer(workflows=WORKFLOWS, data_converter=converter, workflow_runner=
                           sandbox_runner(), interceptors=interceptors
                           ).replay_workflow(traced.history)
            await asyncio.to_thread(tracing.flush)
        finally:
            tracing.shutdown()
        assert [s.name for s in otlp.snapshot()] == []


async def test_tracing_off_installs_nothing_and_sends_nothing(
        dev: DevLedger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert tracing.exporting(settings_from_environment(monkeypatch)) is None, "off by default"
    with otlp_receiver() as otlp:
        settings = settings_from_environment(
            monkeypatch, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=otlp.url)
        assert tracing.exporting(settings) == tracing.Exporting(otlp.url, "duecourse-cli")
        settings = settings_from_environment(  # the endpoint is set, but tracing is off
            monkeypatch, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=otlp.url, DUECOURSE_TRACING="off")
        assert tracing.temporal_interceptors(settings) == []
        async with serving(Receiver()) as hooks, stack(dev, settings) as s:
            assert not [m for m in s.app.user_middleware if m.cls is RequestSpans]
            assert s.client.config()["interceptors"] == []
            loan = await hand_over_with_a_webhook(s, hooks)
            history = await s.client.get_workflow_handle(loan.workflow_id).fetch_history()
        assert tracing.active_tracer() is None, "no tracer provider was built"
        await asyncio.to_thread(tracing.flush)
        assert otlp.posts == 0
    started = history.events[0].workflow_execution_started_event_attributes
    assert "_tracer-data" not in started.header.fields


async def test_an_exported_error_keeps_its_type_not_its_message() -> None:
    """The interceptor records an activity's exception on its span; a provider's error can
    quote the borrower's email, so the trace backend gets the error's type only."""
    with otlp_receiver() as otlp:
        settings = settings_for_tests().model_copy(update={"otlp_traces_endpoint": otlp.url})
        try:
            provider = tracing.tracer_provider(settings)
            assert provider is not None
            with contextlib.suppress(ValueError), provider.get_tracer("test").start_as_current_span(
                    "RunActivity:send_message"):
                raise ValueError("mailbox li.wei@example.com refused the message")
            await asyncio.to_thread(tracing.flush)
        finally:
            tracing.shutdown()
    [span] = otlp.snapshot()
    assert span.status == "" and span.events == {"exception": {
        "exception.type": "ValueError", "exception.escaped": "False"}}


def test_tracing_settings_are_checked_and_name_the_process() -> None:
    bad = settings_for_tests().model_copy(update={"otlp_endpoint": "collector:4318"})
    with pytest.raises(tracing.TracingSettingsError, match="OTEL_EXPORTER_OTLP_ENDPOINT must"):
        tracing.exporting(bad)
    base = settings_for_tests().model_copy(update={"otlp_endpoint": "http://otel:4318/"})
    assert tracing.exporting(base) == tracing.Exporting("http://otel:4318/v1/traces",
                                                        "duecourse-cli")
    forced = settings_for_tests().model_copy(update={"tracing": "otlp"})
    assert tracing.exporting(forced).endpoint == tracing.DEFAULT_ENDPOINT  # type: ignore[union-attr]
    assert [tracing.default_service_name(argv) for argv in (
        ["/usr/bin/duecourse", "worker"], ["worker.py"], ["/x/duecourse/__main__.py", "api"],
        ["/usr/bin/duecourse", "dev", "--demo"], ["/usr/bin/duecourse", "start", "f.csv"])
    ] == ["duecourse-worker", "duecourse-worker", "duecourse-api", "duecourse-dev",
          "duecourse-cli"]

"""The API's /metrics: request counts and latency by route template, method and status,
plus the open totals ops watch, in Prometheus text format (prometheus_client).

- Routes are labelled by their template (`/v1/loans/{loan_id}`), never the raw path, so
  loan ids stay out of the labels and the series stay few; a path no route matched is
  `unmatched`.
- /metrics needs no API key, as Prometheus scrapes expect; it says only how much and how
  fast, never whose. Keep it on the private network (a proxy in front of the API should not
  publish it), or turn it off with DUECOURSE_API_METRICS=false. It is left out of the
  OpenAPI document: platforms do not integrate with it.
- At each scrape it reads the totals that counters cannot give after a restart:
  duecourse_alerts_open (ops alerts nobody acknowledged, from the ledger) and
  duecourse_loans_needing_attention (running loans with NeedsAttention, from Temporal's
  visibility). A source that does not answer within SOURCE_TIMEOUT leaves its gauge out of
  that scrape instead of failing it.
- Each app has its own registry, so several apps in one process (tests) never collide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from duecourse import search_attributes as sa
from duecourse.observability.business_metrics import ALERTS_OPEN, LOANS_NEEDING_ATTENTION
from duecourse.settings import Settings
from duecourse.store import tables as t

if TYPE_CHECKING:  # the API package imports this module
    from duecourse.api.services import Services

log = structlog.get_logger(__name__)

REQUESTS = "duecourse_api_requests_total"
LATENCY = "duecourse_api_request_duration_seconds"
API_SERIES = (REQUESTS, LATENCY, ALERTS_OPEN, LOANS_NEEDING_ATTENTION)
SOURCE_TIMEOUT = 5.0
UNMATCHED = "unmatched"
NEEDING_ATTENTION = f"{sa.NEEDS_ATTENTION.name} = true AND ExecutionStatus = 'Running'"


class RequestMetrics:
    """ASGI middleware: one count and one latency observation per HTTP request."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app, self._requests, self._latency = app, requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets when the app raises before answering
        started = time.perf_counter()

        async def observe_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe_status)
        finally:
            labels = (scope["method"], _template(scope), str(status))
            self._requests.labels(*labels).inc()
            self._latency.labels(*labels).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    """The matched route's template (the router records the route in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class OpenTotals(Collector):
    """The gauges read at scrape time; `refresh` runs before each exposition."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    async def refresh(self, services: Services | None) -> None:
        values: dict[str, float] = {}
        if services is not None:
            for name, read in ((ALERTS_OPEN, _open_alerts),
                               (LOANS_NEEDING_ATTENTION, _needing_attention)):
                try:
                    values[name] = float(await asyncio.wait_for(read(services),
                                                                SOURCE_TIMEOUT))
                except Exception as err:  # a scrape never fails for one source
                    log.warning("metric source unavailable", metric=name,
                                error=type(err).__name__)
        self.values = values

    def collect(self) -> Iterator[Metric]:
        helps = {ALERTS_OPEN: "ops alerts nobody acknowledged yet",
                 LOANS_NEEDING_ATTENTION: "running loans that cannot go on by themselves"}
        for name, value in self.values.items():
            yield GaugeMetricFamily(name, helps[name], value=value)


async def _open_alerts(services: Services) -> int:
    a = t.ops_alerts
    async with services.ledger.engine.connect() as conn:
        query = select(func.count()).select_from(a).where(a.c.acknowledged_at.is_(None))
        return int((await conn.execute(query)).scalar_one())


async def _needing_attention(services: Services) -> int:
    return (await services.client.client.count_workflows(NEEDING_ATTENTION)).count


def install(app: FastAPI, settings: Settings) -> None:
    """Count every request and serve /metrics (unless DUECOURSE_API_METRICS is false)."""
    if not settings.api_metrics:
        return
    registry = CollectorRegistry()
    labels = ("method", "route", "status")
    requests = Counter(REQUESTS.removesuffix("_total"), "API requests answered", labels,
                       registry=registry)
    latency = Histogram(LATENCY, "time to answer an API request", labels,
                        registry=registry)
    totals = OpenTotals()
    registry.register(totals)
    app.add_middleware(RequestMetrics, requests=requests, latency=latency)

    async def metrics(request: Request) -> Response:
        await totals.refresh(getattr(request.app.state, "services", None))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)

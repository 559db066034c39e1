"""The duecourse REST API (FastAPI): `duecourse api`, OpenAPI at /docs, versioned /v1.

Platforms integrate with only the OpenAPI document and an API key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from duecourse import __version__
from duecourse.api import docs, problems
from duecourse.api.routes import (
    actions,
    calls,
    desk,
    dialer,
    inbound,
    loans,
    ops,
    ops_page,
    payments,
    portal,
    portfolio,
    unsubscribe,
    webhooks,
)
from duecourse.api.services import Services
from duecourse.observability import api_metrics, tracing
from duecourse.security import codec_routes
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.connection import connect as connect_temporal


def create_app(settings: Settings, provided: Services | None = None) -> FastAPI:
    """The app; `provided` services (tests, `duecourse dev`) skip connecting at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if provided is not None:
            app.state.services = provided
            yield
            return
        engine = connect(settings.ledger_url)
        try:
            await migrate(engine)
            client = await connect_temporal(settings)  # sealed with the payload keys
            app.state.services = Services(
                client=CollectionClient(client, settings.task_queue), ledger=Ledger(engine),
                keys=KeyStore(engine), settings=settings)
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="duecourse",
        version=__version__,
        summary="Loan collection on Temporal: hand over overdue loans, act on them, "
                "follow them.",
        description="Authenticate with an API key (`Authorization: Bearer dc_...`). Every "
                    "error is an RFC 9457 problem (`application/problem+json`).",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served from bundled assets, below
    )
    if provided is not None:
        app.state.services = provided
    problems.install(app)
    app.add_middleware(problems.BodyGuard, max_bytes=settings.max_body_bytes)
    docs.install(app)
    for module in (loans, actions, calls, desk, webhooks, ops, portfolio, inbound, dialer,
                   unsubscribe, portal, ops_page, payments):
        app.include_router(module.router)
    for install in (codec_routes.install, api_metrics.install, tracing.install):
        install(app, settings)
    return app

"""`duecourse codec-server`: the codec routes alone, for a deployment that keeps the
payload keys away from the API (or runs no API): the same /codec paths, authorisation,
CORS and audit, with only the ledger behind them (API keys and the audit table)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse import __version__
from duecourse.api import problems
from duecourse.security import codec_routes
from duecourse.settings import Settings
from duecourse.store import connect, migrate


def _engine(request: Request) -> AsyncEngine:
    return request.app.state.codec_engine  # type: ignore[no-any-return]


def create_codec_app(settings: Settings, engine: AsyncEngine | None = None) -> FastAPI:
    """The app; a provided `engine` (tests) skips connecting and migrating at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine is not None:
            yield
            return
        own = connect(settings.ledger_url)
        try:
            await migrate(own)
            app.state.codec_engine = own
            yield
        finally:
            await own.dispose()

    app = FastAPI(title="duecourse codec server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    if engine is not None:
        app.state.codec_engine = engine
    problems.install(app)
    app.add_middleware(problems.BodyGuard, max_bytes=settings.max_body_bytes)
    codec_routes.install(app, settings, engine_of=_engine)
    return app

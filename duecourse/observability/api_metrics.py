"""PLACEHOLDER (H4 owns this module): the API's /metrics."""

from __future__ import annotations

from fastapi import FastAPI

from duecourse.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """PLACEHOLDER: request counts and latency by route and status at /metrics."""

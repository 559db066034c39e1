"""PLACEHOLDER (H5 owns this module): OpenTelemetry tracing."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from duecourse.settings import Settings


def temporal_interceptors(settings: Settings) -> list[Any]:
    """The Temporal client/worker interceptors tracing needs; none when tracing is off."""
    return []


def install(app: FastAPI, settings: Settings) -> None:
    """PLACEHOLDER: request spans in the API."""

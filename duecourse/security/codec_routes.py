"""PLACEHOLDER (H2 owns this module): the codec server routes."""

from __future__ import annotations

from fastapi import FastAPI

from duecourse.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """PLACEHOLDER: /codec/encode and /codec/decode."""

"""Waiting for what real servers do eventually (visibility indexing, workers, timers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     seconds: float = 20) -> None:
    """Poll `check` until it holds; after `seconds`, fail saying `what` never happened."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)

"""Stopping a long-running subprocess the way a person at its terminal would."""

from __future__ import annotations

import asyncio
import signal


async def interrupt(proc: asyncio.subprocess.Process, seconds: float) -> int:
    """Ctrl-C (SIGINT) and its exit code; killed when it has not stopped within `seconds`
    (the wait's TimeoutError then reaches the caller: a clean stop is part of the test)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    try:
        return await asyncio.wait_for(proc.wait(), seconds)
    finally:
        if proc.returncode is None:
            proc.kill()

"""One timer per planned due time.

`wait_condition(timeout=...)` starts a new timer on every wait, so each signal that wakes
the loop cancels one timer and arms another - every timer is a billed action and events
in the history. The loop keeps this one instead while the planned due time stays the
same, and waits without a timeout for "state changed or the timer fired".
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow


class DueTimer:
    def __init__(self) -> None:
        self._due: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def arm(self, due_at: datetime, summary: str) -> None:
        """Fire at `due_at`: the running timer when it is for that time, else a new one."""
        if self._due == due_at and self._task is not None and not self._task.done():
            return
        self.cancel()
        self._due = due_at
        self._task = asyncio.create_task(
            workflow.sleep(due_at - workflow.now(), summary=summary))

    def fired(self) -> bool:
        return self._task is not None and self._task.done()

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task, self._due = None, None

"""Each provider's send rate, respected across all workers: every send runs on its channel's
own task queue (`channel_queue`), served by an activity-only worker that asks the Temporal
server for `max_task_queue_activities_per_second`. The server hands out that queue's tasks
at that rate to all its pollers together, so adding workers never adds sends per second.

The workflow picks the queue from its own (deterministic) task queue and the channel kind;
workflows from before `send-queue-per-channel` still send on their main queue, which the
main worker keeps serving unlimited.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Interceptor, PollerBehaviorSimpleMaximum, Worker

from duecourse.settings import Settings
from duecourse.temporal.contracts import SEND_MESSAGE

CHANNEL_KINDS = ("sms", "email", "voice", "letter", "visit")
"""Every kind a step may send on (duecourse.domain.policy.Channel)."""

SEND_QUEUE_PER_CHANNEL = "send-queue-per-channel"
"""Patch: sends run on their channel's queue (histories from before it send on the
workflow's own queue)."""

CHANNEL_POLLERS = 2
"""Pollers per channel queue and process: a poll returns one task in milliseconds, so two
keep up with any provider's rate; more would only hold idle connections."""


def channel_queue(task_queue: str, channel: str) -> str:
    """The queue `channel`'s sends run on for workflows on `task_queue`."""
    return f"{task_queue}-{channel}"


def channel_rates(settings: Settings) -> dict[str, float | None]:
    """Sends per second per channel kind, across all workers (None: unlimited)."""
    return {"sms": settings.sms_rate, "email": settings.email_rate,
            "voice": settings.voice_rate, "letter": settings.letter_rate, "visit": None}


def channel_workers(client: Client, task_queue: str, activities: Sequence[object],
                    settings: Settings, interceptors: Sequence[Interceptor] = (),
                    ) -> list[Worker]:
    """One activity-only worker per channel queue, running this process's send activity
    at the channel's rate. None when `activities` has no send activity (a worker built for
    other activities only)."""
    send = next((fn for fn in activities if _activity_name(fn) == SEND_MESSAGE), None)
    if send is None:
        return []
    return [Worker(client, task_queue=channel_queue(task_queue, kind), activities=[send],
                   max_task_queue_activities_per_second=rate,
                   activity_task_poller_behavior=PollerBehaviorSimpleMaximum(CHANNEL_POLLERS),
                   interceptors=list(interceptors),
                   max_concurrent_activities=settings.max_concurrent_activities,
                   graceful_shutdown_timeout=timedelta(
                       seconds=settings.graceful_shutdown_seconds))
            for kind, rate in channel_rates(settings).items()]


@contextlib.asynccontextmanager
async def serving_channels(client: Client, task_queue: str, activities: Sequence[object],
                           settings: Settings) -> AsyncIterator[list[Worker]]:
    """The channel queues' workers, running while inside: for a caller that builds its own
    main Worker instead of duecourse.runtime.build_worker (which runs them itself)."""
    async with contextlib.AsyncExitStack() as stack:
        workers = channel_workers(client, task_queue, activities, settings)
        for worker in workers:
            await stack.enter_async_context(worker)
        yield workers


def _activity_name(fn: object) -> str | None:
    definition: Any = getattr(fn, "__temporal_activity_definition", None)
    return definition.name if definition is not None else None

"""The duecourse worker: runs the collection workflows, their activities and the webhook
dispatcher (duecourse.webhooks.dispatcher).

`duecourse worker` (or `python worker.py` in a checkout). Settings come from the environment (see
duecourse.settings); the ledger schema can be migrated at start with `--migrate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from duecourse.activities import build_activities
from duecourse.activities.reconciliation import ReconciliationActivities
from duecourse.channels.outages import OutageWatch
from duecourse.channels.rate_limits import channel_rates, channel_workers
from duecourse.channels.routing import channels_from_settings
from duecourse.logs import configure_logging
from duecourse.observability import tracing
from duecourse.observability.business_metrics import ActivityFailureMetrics
from duecourse.observability.prometheus import MetricsAddressError, metrics_runtime
from duecourse.observability.tracing import TracingSettingsError
from duecourse.payments.schedule import ensure_schedule
from duecourse.portal.links import PortalLinks
from duecourse.security.payload_keys import PayloadKeyError, ring_from_settings
from duecourse.settings import Settings, get_settings
from duecourse.store import Ledger, connect, migrate
from duecourse.store.webhooks import WebhookStore
from duecourse.temporal.connection import TemporalConfigError
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.reconciliation import RECONCILE_PAYMENTS, RECONCILIATION_SCHEDULE
from duecourse.webhooks.dispatcher import OutboxDispatcher
from duecourse.workflows.collection import LoanCollectionWorkflow
from duecourse.workflows.legal_case import LegalCaseWorkflow
from duecourse.workflows.reconciliation import PaymentReconciliation
from duecourse.workflows.repayment_plan import RepaymentPlanWorkflow

log = structlog.get_logger("duecourse.worker")

WORKFLOWS = [LoanCollectionWorkflow, RepaymentPlanWorkflow, LegalCaseWorkflow,
             PaymentReconciliation]

PASSTHROUGH = ("duecourse.domain", "duecourse.search_attributes", "duecourse.temporal",
               "duecourse.workflows.actions", "duecourse.workflows.children",
               "duecourse.workflows.contact_path", "duecourse.workflows.due_timer",
               "duecourse.workflows.hand_over", "duecourse.workflows.legal_progress",
               "duecourse.workflows.refusal", "duecourse.workflows.supervision",
               "duecourse.workflows.visibility",
               "pydantic", "pydantic_core", "annotated_types", "email_validator", "dns",
               "idna", "yaml", "holidays", "dateutil", "opentelemetry")
"""Modules the sandbox shares instead of re-importing per workflow run (measured: an
unpassed model module cost 7x memory and halved throughput; passing the workflow's helper
modules through, with an empty package root, took a parked loan from 438 to 178 KiB).
The modules that define workflows (collection, repayment_plan, legal_case) stay
sandboxed, so their handlers still run under the sandbox's restrictions; the helpers,
like the domain, are kept deterministic by the lint in tests/test_lint.py."""


def sandbox_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH))


class DuecourseWorker(Worker):
    """A Temporal worker that runs this process's webhook dispatcher and its channel
    queues' send workers (duecourse.channels.rate_limits) while it runs: all start and stop
    together, under `async with` as under `run()`, and one that fails stops them all.
    `on_start` runs first, once per start (the payment reconciliation's schedule)."""

    def __init__(self, client: Client, *, dispatcher: Callable[[], OutboxDispatcher],
                 channel_workers: Sequence[Worker] = (),
                 on_start: Callable[[], Awaitable[None]] | None = None,
                 **config: Any) -> None:
        super().__init__(client, **config)
        self._dispatcher = dispatcher
        self._on_start = on_start
        self._channel_workers = list(channel_workers)
        self._started_channels: list[Worker] = []

    async def run(self) -> None:
        if self._on_start is not None:
            await self._on_start()
        async with self._dispatcher().running():
            self._started_channels = list(self._channel_workers)
            runs = [asyncio.ensure_future(super().run()),
                    *(asyncio.ensure_future(w.run()) for w in self._started_channels)]
            try:
                await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await self.shutdown()
                await asyncio.wait(runs)
            failed = next((r.exception() for r in runs
                           if not r.cancelled() and r.exception()), None)
            if failed is not None:
                raise failed

    async def shutdown(self) -> None:
        """Shut down the main worker and the started channel workers together (a worker
        never started would wait for ever)."""
        await asyncio.gather(super().shutdown(),
                             *(w.shutdown() for w in self._started_channels))


def build_worker(client: Client, ledger: Ledger, settings: Settings,
                 task_queue: str | None = None, activities: Sequence[object] | None = None,
                 ) -> Worker:
    """A worker for all duecourse workflows and activities on one task queue, with the
    webhook dispatcher (built when the worker starts) and a rate-limited send worker per
    channel queue (`<task_queue>-<channel>`, from the same activities)."""
    acts = list(activities) if activities is not None else build_activities(
        ledger, channels_from_settings(settings, ledger), settings.lender_name,
        settings.lender_contact, settings.scorer, settings.legal_partner_email,
        PortalLinks.from_settings(settings))
    queue = task_queue or settings.task_queue
    own = acts
    if not any(_activity_name(a) == RECONCILE_PAYMENTS for a in acts):
        own = [*acts, ReconciliationActivities(ledger, settings).reconcile_payments]
    return DuecourseWorker(
        client,
        dispatcher=lambda: OutboxDispatcher(
            WebhookStore(ledger.engine, settings.webhook_allow_private),
            poll_seconds=settings.webhook_poll_seconds),
        channel_workers=channel_workers(
            client, queue, acts, settings,
            interceptors=[ActivityFailureMetrics(), OutageWatch(ledger)]),
        on_start=(lambda: _schedule_reconciliation(client, queue))
        if settings.payment_provider != "none" else None,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=own,  # type: ignore[arg-type]
        workflow_runner=sandbox_runner(),
        interceptors=[ActivityFailureMetrics()],  # with the client's (tracing)
        max_concurrent_activities=settings.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )


def _activity_name(fn: object) -> str | None:
    definition: Any = getattr(fn, "__temporal_activity_definition", None)
    return definition.name if definition is not None else None


async def _schedule_reconciliation(client: Client, task_queue: str) -> None:
    """The daily payment reconciliation's schedule, created once (duecourse.payments.schedule).
    A server that refuses schedules (the time-skipping test server has none), or any other
    failure, is said in the log and does not stop the worker: collection does not wait
    for it, and `duecourse payments schedule --create` creates it later."""
    try:
        outcome = await ensure_schedule(client, task_queue)
    except Exception as err:
        log.warning("payment reconciliation schedule not created",
                    schedule=RECONCILIATION_SCHEDULE, error=type(err).__name__,
                    detail=(err.message if isinstance(err, RPCError) else str(err))[:200])
        return
    log.info("payment reconciliation scheduled", schedule=RECONCILIATION_SCHEDULE,
             outcome=outcome)


async def run_worker(settings: Settings, *, run_migrations: bool = False,
                     stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGINT/SIGTERM when none is given). Missing or
    malformed payload keys raise PayloadKeyError before anything connects."""
    ring = ring_from_settings(settings)
    runtime = metrics_runtime(settings.metrics_address) if settings.metrics_address else None
    client = await connect_temporal(settings, runtime=runtime, ring=ring)
    engine = connect(settings.ledger_url)
    try:
        stop = stop or _stop_on_signals()
        if run_migrations and not await _migrate_when_reachable(engine, stop):
            return
        worker = build_worker(client, Ledger(engine), settings)
        log.info("worker started", task_queue=settings.task_queue,
                 send_rates={k: v or "unlimited" for k, v in channel_rates(settings).items()},
                 temporal=settings.temporal_address, namespace=settings.temporal_namespace,
                 metrics=settings.metrics_address,
                 ledger=engine.url.render_as_string(hide_password=True))
        async with worker:
            await stop.wait()
    finally:
        await engine.dispose()
        await asyncio.to_thread(tracing.shutdown)  # batched spans leave before we do
        log.info("worker stopped")


async def _migrate_when_reachable(engine: AsyncEngine, stop: asyncio.Event) -> bool:
    """Migrate the ledger, waiting (and saying so) while it cannot be reached: a worker
    restarted during a database outage waits for it instead of exiting. False when
    stopped first."""
    wait = 1.0
    while True:
        try:
            await migrate(engine)
            return True
        except (OperationalError, InterfaceError, OSError, TimeoutError) as err:
            log.warning("ledger unreachable; the worker starts once it answers",
                        error=type(err).__name__, retry_in=wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
            return False
        wait = min(wait * 2, 30.0)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        asyncio.run(run_worker(settings, run_migrations=True))
    except (PayloadKeyError, TemporalConfigError, TracingSettingsError,
            MetricsAddressError) as err:
        # a setting to fix, not a bug: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


"""The daily payment reconciliation runs by itself, on a real Temporal dev server (schedules
need it): a worker with a payment provider creates the `payments-reconciliation` schedule
when it starts - once, however many start - and a run it triggers raises one ops alert per
difference, tied to the loan whose checkout it is; a second run of the same day raises none,
a payment no loan of ours can be tied to is counted, not filed under an invented loan, a
run caught up late reconciles the day before it was due, and a provider setting that cannot
work fails the run at once with a sentence. `duecourse payments schedule` shows it and
creates it when missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import SecretStr
from temporalio.client import (
    ScheduleBackfill,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    WorkflowFailureError,
)
from temporalio.exceptions import ApplicationError

from duecourse.domain.money import Money
from duecourse.payments.base import EventKind, ledger_reference
from duecourse.payments.flow import start_checkout
from duecourse.payments.providers import provider_from_settings
from duecourse.payments.sandbox import SandboxProvider
from duecourse.policies import load_policy
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import tables as t
from duecourse.store.ops_queries import list_alerts
from duecourse.temporal.reconciliation import (
    RECONCILIATION_SCHEDULE,
    ReconciliationRequest,
    ReconciliationSummary,
)
from duecourse.workflows.reconciliation import PaymentReconciliation
from tests.factories import daytime_zone, make_loan
from tests.support.devserver import DevWorker, dev_server_with_worker
from tests.support.waiting import eventually
from tests.test_starter_cli_devserver import cli

pytestmark = pytest.mark.devserver


def sandbox_settings(data: Path, **kwargs: object) -> Settings:
    return Settings(lender_name="Acme Lending", lender_contact="400-800-1234",
                    webhook_allow_private=True, data_dir=data, payment_provider="sandbox",
                    public_url="http://127.0.0.1:8000",
                    payment_webhook_secret=SecretStr("schedule-test-secret"), **kwargs)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("payments-schedule")


@pytest.fixture(scope="module")
async def stack(tmp: Path) -> AsyncIterator[DevWorker]:
    async with dev_server_with_worker(tmp, sandbox_settings(tmp / "data")) as dev:
        yield dev


@pytest.fixture
def cfg(tmp: Path) -> Settings:
    """The worker's settings (its sandbox's books are in its data_dir)."""
    return sandbox_settings(tmp / "data")


def sandbox(cfg: Settings) -> SandboxProvider:
    provider = provider_from_settings(cfg)
    assert isinstance(provider, SandboxProvider)
    return provider


async def schedule(stack: DevWorker) -> ScheduleHandle:
    handle = stack.client.get_schedule_handle(RECONCILIATION_SCHEDULE)

    async def exists() -> bool:
        try:
            await handle.describe()
        except Exception:  # not found (yet): the worker creates it as it starts
            return False
        return True

    await eventually(exists, "the worker to create the reconciliation schedule")
    return handle


async def run_once(stack: DevWorker, handle: ScheduleHandle) -> ReconciliationSummary:
    """Trigger the schedule and wait for the run it starts."""
    before = len((await handle.describe()).info.recent_actions)
    await handle.trigger()

    async def started() -> bool:
        return len((await handle.describe()).info.recent_actions) > before

    await eventually(started, "the triggered reconciliation to start")
    action = (await handle.describe()).info.recent_actions[-1].action
    run = stack.client.get_workflow_handle(
        action.workflow_id, run_id=action.first_execution_run_id,  # type: ignore[attr-defined]
        result_type=ReconciliationSummary)
    return await run.result()


async def a_loan(stack: DevWorker) -> tuple[str, str]:
    """A loan in collection: (loan_id, case_id)."""
    now = datetime.now(UTC)
    loan = make_loan(now, dpd=3, tz=daytime_zone(now))
    await stack.collection.start(loan, load_policy("standard"))
    cases: list[dict[str, object]] = []

    async def opened() -> bool:
        cases[:] = await stack.ledger.rows(t.collection_cases, loan_id=loan.loan_id)
        return bool(cases)

    await eventually(opened, "the loan's case to open")
    return loan.loan_id, str(cases[0]["case_id"])


async def test_the_worker_creates_one_daily_schedule_however_often_it_starts(
        stack: DevWorker, cfg: Settings) -> None:
    handle = await schedule(stack)
    first = await handle.describe()
    (calendar,) = first.schedule.spec.calendars
    assert [(r.start, r.end) for r in calendar.hour] == [(2, 2)]
    assert [(r.start, r.end) for r in calendar.minute] == [(30, 30)]
    assert calendar.day_of_month[0].start == 1 and calendar.day_of_month[0].end == 31
    assert first.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    assert first.schedule.policy.catchup_window == timedelta(days=1)
    runs = first.info.next_action_times[:3]
    assert all(r.time() == time(2, 30) and r.utcoffset() == timedelta(0) for r in runs)
    assert [b - a for a, b in pairwise(runs)] == [timedelta(days=1)] * 2

    other = f"tq-{uuid4().hex}"  # a second worker starts: the schedule is left as it was
    async with build_worker(stack.client, stack.ledger, cfg, other):
        # a manual run for a given day, on the second worker: it is polling, so its start
        # (and its look at the schedule) is over
        quiet = await stack.client.execute_workflow(
            PaymentReconciliation.run, ReconciliationRequest(day=date(2020, 1, 6)),
            id=f"reconcile-{uuid4().hex}", task_queue=other,
            execution_timeout=timedelta(seconds=60))
    assert quiet.day == date(2020, 1, 6) and quiet.unknown_to_ledger == 0
    again = await handle.describe()
    assert again.schedule.action.task_queue == stack.task_queue  # type: ignore[attr-defined]

    async def listed() -> bool:
        return any([s async for s in await stack.client.list_schedules()])

    await eventually(listed, "the schedule to be listed")
    assert [s.id async for s in await stack.client.list_schedules()] == \
        [RECONCILIATION_SCHEDULE]


async def test_a_payment_the_loan_never_heard_of_alerts_ops_once(stack: DevWorker,
                                                                 cfg: Settings) -> None:
    handle = await schedule(stack)
    loan_id, case_id = await a_loan(stack)
    provider = sandbox(cfg)
    yesterday = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(12),
                                 UTC)
    lost = await start_checkout(provider, stack.engine, loan_id, case_id,
                                Money.of("150.00", "CNY"), "http://127.0.0.1:8000/b/x")
    provider.settle(lost.id, EventKind.PAID, now=yesterday)  # its webhook never delivered
    # paid at a checkout no loan of ours opened (not in the ledger at all): counted only
    stray = await provider.create_checkout("L-not-ours", "C-not-ours",
                                           Money.of("20.00", "CNY"), "http://x")
    provider.settle(stray.id, EventKind.PAID, now=yesterday)
    reference = ledger_reference("sandbox", lost.id)

    summary = await run_once(stack, handle)
    assert summary.day == yesterday.date()
    assert (summary.unknown_to_ledger, summary.untied) == (2, 1)
    assert summary.alerts_raised == 1
    alerts = await list_alerts(stack.engine, loan_id=loan_id)
    assert [a.subject for a in alerts] == [
        f"[{loan_id}] payment {reference} paid at the provider, unknown to the ledger "
        f"(sandbox, reconciliation of {yesterday.date()})"]
    assert "150.00 CNY" in alerts[0].body and "webhook" in alerts[0].body
    assert alerts[0].case_id == case_id

    second = await run_once(stack, handle)  # the same day again: nothing new
    assert (second.unknown_to_ledger, second.alerts_raised) == (2, 0)
    assert len(await list_alerts(stack.engine, loan_id=loan_id)) == 1
    assert not [a for a in await list_alerts(stack.engine) if "not-ours" in a.subject]


async def test_a_provider_setting_that_cannot_work_fails_the_run_with_a_sentence(
        stack: DevWorker, cfg: Settings) -> None:
    broken = cfg.model_copy(update={"payment_provider": "stripe"})
    queue = f"tq-{uuid4().hex}"
    async with build_worker(stack.client, stack.ledger, broken, queue):
        with pytest.raises(WorkflowFailureError) as failed:
            await stack.client.execute_workflow(
                PaymentReconciliation.run, ReconciliationRequest(day=date(2020, 1, 6)),
                id=f"reconcile-{uuid4().hex}", task_queue=queue,
                execution_timeout=timedelta(seconds=60))
    cause = failed.value.cause.cause  # the activity's failure, not retried
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert cause.message == (
        "The payment reconciliation for 2020-01-06 cannot run: payment_provider is stripe "
        "and stripe_api_key (DUECOURSE_STRIPE_API_KEY) is not set.")


async def test_payments_schedule_shows_it_and_creates_it_when_missing(
        stack: DevWorker) -> None:
    handle = await schedule(stack)
    shown = await cli(stack, "payments", "schedule")
    assert shown.code == 0, shown.err
    assert f"payments-reconciliation: daily at 02:30 UTC, active, task queue " \
           f"{stack.task_queue}" in shown.out
    await handle.delete()  # last in this module: the others need it
    missing = await cli(stack, "payments", "schedule")
    assert missing.code == 1
    assert "no schedule payments-reconciliation on this Temporal namespace" in missing.err
    made = await cli(stack, "payments", "schedule", "--create")
    assert made.code == 0, made.err
    assert "(created now)" in made.out
    assert (await handle.describe()).schedule.action.task_queue == \
        stack.task_queue  # type: ignore[attr-defined]


async def test_a_late_run_reconciles_the_day_before_it_was_due(stack: DevWorker) -> None:
    """A run caught up (here: backfilled) after its time reconciles the day before the time
    it was due, not the day before it started."""
    handle = await schedule(stack)
    due = datetime.combine(datetime.now(UTC).date() - timedelta(days=3), time(2, 30), UTC)
    await handle.backfill(ScheduleBackfill(start_at=due - timedelta(minutes=5),
                                           end_at=due + timedelta(minutes=5),
                                           overlap=ScheduleOverlapPolicy.ALLOW_ALL))
    run = stack.client.get_workflow_handle(
        f"{RECONCILIATION_SCHEDULE}-{due.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        result_type=ReconciliationSummary)

    async def started() -> bool:
        try:
            await run.describe()
        except Exception:  # not started yet
            return False
        return True

    await eventually(started, "the backfilled run to start")
    assert (await run.result()).day == due.date() - timedelta(days=1)

"""The `payments-reconciliation` Temporal Schedule: the PaymentReconciliation workflow every
day at 02:30 UTC, for the day before.

Created when a worker with a payment provider starts (duecourse.runtime) or by
`duecourse payments schedule --create`; one that exists already is left as it is - ops may
have paused it or moved its time - so starting many workers never makes a second one.
Overlapping runs are skipped (a day still retrying its provider is not run twice) and a run
missed while the server was down is caught up within a day.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)

from duecourse.temporal.reconciliation import (
    RECONCILIATION_SCHEDULE,
    RECONCILIATION_WORKFLOW,
    ReconciliationRequest,
)

HOUR, MINUTE = 2, 30  # UTC, when yesterday's late webhooks have had time to arrive
RUN_TIMEOUT = timedelta(hours=22)  # a run ends before the next one is due


def reconciliation_schedule(task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILIATION_WORKFLOW, ReconciliationRequest(), id=RECONCILIATION_SCHEDULE,
            task_queue=task_queue, execution_timeout=RUN_TIMEOUT),
        spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(
            hour=[ScheduleRange(HOUR)], minute=[ScheduleRange(MINUTE)],
            comment="daily, for the UTC day before")], time_zone_name="UTC"),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP,
                              catchup_window=timedelta(days=1)),
        state=ScheduleState(note="created by duecourse: the payment provider's books "
                                 "against the ledger; each difference is an ops alert"))


async def ensure_schedule(client: Client, task_queue: str) -> Literal["created", "exists"]:
    """Create the schedule unless it exists (then it is left alone, whatever it says)."""
    try:
        await client.create_schedule(RECONCILIATION_SCHEDULE,
                                     reconciliation_schedule(task_queue),
                                     rpc_timeout=timedelta(seconds=10))
    except ScheduleAlreadyRunningError:
        return "exists"
    return "created"

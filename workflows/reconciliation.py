"""PaymentReconciliation: once a day, the payment provider's books against the ledger.

Started by the `payments-reconciliation` Temporal Schedule (duecourse.payments.schedule),
or by hand with a day. It reconciles one UTC day - the one given, or the day before the
run's scheduled time (the moment a late catch-up run was due, not when it started) - in one
activity, `reconcile_payments`, which raises an ops alert per difference. A provider that
cannot be asked is asked again with back-off for most of a day; a setting that cannot work
fails the run at once with a sentence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from duecourse.temporal.reconciliation import (
        RECONCILE_PAYMENTS,
        RECONCILIATION_WORKFLOW,
        ReconcileDay,
        ReconciliationRequest,
        ReconciliationSummary,
    )

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
"""Set by Temporal on a run a schedule started: when it was due."""

RETRY = RetryPolicy(initial_interval=timedelta(seconds=30), backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=30),
                    non_retryable_error_types=["PaymentSettingsError"])
GIVE_UP = timedelta(hours=20)
"""How long a provider outage is retried: the run ends before the next day's is due."""


@workflow.defn(name=RECONCILIATION_WORKFLOW)
class PaymentReconciliation:
    @workflow.run
    async def run(self, request: ReconciliationRequest) -> ReconciliationSummary:
        day = request.day or (self._due() - timedelta(days=1)).date()
        return await workflow.execute_activity(
            RECONCILE_PAYMENTS, ReconcileDay(day=day), result_type=ReconciliationSummary,
            start_to_close_timeout=timedelta(minutes=10), schedule_to_close_timeout=GIVE_UP,
            retry_policy=RETRY)

    def _due(self) -> datetime:
        due = workflow.info().typed_search_attributes.get(SCHEDULED_START)
        return (due if due is not None else workflow.now()).astimezone(UTC)

"""EventDeliveryWorkflow: kept only so deliveries started by loans on duecourse 0.3 finish.

Loans on 0.3 started one abandoned child per outbound event; newer code writes outbox rows
in the ledger transaction of the fact instead, delivered by each worker's dispatcher
(duecourse.webhooks.dispatcher). A run in flight at the upgrade must still complete, so the
workflow stays registered: its activity delivers to the webhooks no outbox row covers, with
the same retry schedule as the dispatcher, and the run ends with a report instead of
failing, so the parent never has a failure to handle.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.events import DELIVERY_SCHEDULE, DeliveryReport, OutboundEvent
    from duecourse.temporal.contracts import DELIVER_EVENT

DELIVERY_RETRY = RetryPolicy(initial_interval=DELIVERY_SCHEDULE.first_delay,
                             backoff_coefficient=DELIVERY_SCHEDULE.backoff,
                             maximum_interval=DELIVERY_SCHEDULE.longest_delay,
                             maximum_attempts=DELIVERY_SCHEDULE.attempts)
"""The dispatcher's schedule as a Temporal retry policy (about two hours, then give up)."""


@workflow.defn(name="EventDelivery")
class EventDeliveryWorkflow:
    @workflow.run
    async def run(self, event: OutboundEvent) -> DeliveryReport:
        try:
            return await workflow.execute_activity(
                DELIVER_EVENT, event, result_type=DeliveryReport,
                start_to_close_timeout=timedelta(seconds=60), retry_policy=DELIVERY_RETRY)
        except ActivityError as err:
            cause = err.cause.message if isinstance(err.cause, ApplicationError) else str(err)
            workflow.logger.warning("event not delivered", extra={
                "event_id": event.event_id, "loan_id": event.loan_id, "error": cause})
            return DeliveryReport(event_id=event.event_id, gave_up=cause)

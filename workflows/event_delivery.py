"""EventDeliveryWorkflow: one outbound event, delivered to every subscribed webhook.

Started by the loan's workflow as an abandoned child per event, so a slow or broken
receiver never holds up collection, and deliveries carry on after the loan has closed.
The activity retries with backoff while any webhook can still succeed; the run then ends
with a report instead of failing, so the parent never has a failure to handle.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.events import DeliveryReport, OutboundEvent
    from duecourse.temporal.contracts import DELIVER_EVENT

DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=10), maximum_attempts=20)
"""About two hours of retries (2 s doubling to 10 min, 20 attempts) before giving up."""


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


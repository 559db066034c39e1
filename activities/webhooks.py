"""`deliver_event`: the EventDelivery workflow's activity, for runs started on 0.3.

Newer runs queue outbox rows instead (duecourse.store.outbox), delivered by the worker's
dispatcher; this activity posts an event only to the subscribed webhooks that no outbox row
covers, through the same sender (duecourse.webhooks.delivery). It reads the outbox before
the delivery record: a row is deleted only after its final outcome is recorded, so an
(event, webhook) pair is never posted by both paths. A retry (the activity raises
`DeliveryFailed` while any webhook can still succeed) skips webhooks that already have a
final status.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duecourse.domain.events import DeliveryReport, OutboundEvent
from duecourse.store.outbox import WebhookOutbox
from duecourse.store.owners import LoanOwners
from duecourse.store.webhooks import FINAL, WebhookStore
from duecourse.temporal.contracts import DELIVER_EVENT
from duecourse.webhooks.delivery import WebhookSender


class WebhookActivities:
    """`http_client` and `timeout` as for WebhookSender."""

    def __init__(self, store: WebhookStore,
                 http_client: Callable[[], httpx.AsyncClient] | None = None,
                 timeout: float = 10.0) -> None:
        self._store = store
        self._outbox = WebhookOutbox(store.engine)
        self._sender = WebhookSender(store, http_client, timeout)

    @activity.defn(name=DELIVER_EVENT)
    async def deliver_event(self, event: OutboundEvent) -> DeliveryReport:
        info = activity.info()
        policy = info.retry_policy
        last_try = bool(policy and policy.maximum_attempts
                        and info.attempt >= policy.maximum_attempts)
        owner = await LoanOwners(self._store.engine).owner_of(event.loan_id)
        hooks = await self._store.active_for(event.type, owner)
        queued = await self._outbox.queued_for(event.event_id)  # before the record: see above
        done = {d.webhook_id for d in await self._store.deliveries(event_id=event.event_id)
                if d.status in FINAL}
        report = DeliveryReport(
            event_id=event.event_id,
            skipped=[h.webhook_id for h in hooks if h.webhook_id in done],
            queued=[h.webhook_id for h in hooks
                    if h.webhook_id in queued and h.webhook_id not in done])
        todo = [h for h in hooks if h.webhook_id not in done | queued]
        outcomes = await self._sender.deliver(event, todo, info.attempt, last_try)
        report.delivered.extend(o.webhook_id for o in outcomes if o.status == "delivered")
        report.failed.extend(o.webhook_id for o in outcomes if o.status == "failed")
        pending = [o for o in outcomes if o.status == "pending"]
        if pending:
            raise ApplicationError(
                f"{len(pending)} webhook(s) not yet delivered: " + "; ".join(
                    f"{o.webhook_id}: {o.error}" for o in pending),
                type="DeliveryFailed")
        return report

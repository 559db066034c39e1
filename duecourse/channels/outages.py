"""Ops hear of a provider outage while its messages still wait: a send whose provider has
failed it `OUTAGE_ALERT_AFTER` times (5xx, timeouts, refused connections) raises one ops
alert for its loan, and keeps retrying with back-off until it goes out, its lawful window
closes or its channel budget is spent. Without it ops learnt of an outage only once a
message had been given up.

A worker interceptor on the channel queues' workers (duecourse.channels.rate_limits), so
the send activity itself stays about one send.
"""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from duecourse.store import tables as t
from duecourse.store.ledger import Ledger
from duecourse.temporal.contracts import SEND_MESSAGE, OpsAlert, SendMessage

log = structlog.get_logger(__name__)

OUTAGE_ALERT_AFTER = 3
"""Failed provider calls of one message before ops are told: about two minutes (a failed
call keeps its claim's one-minute lease, so calls come about a minute apart), longer than
a blip and well before the message's channel budget (`max_channel_attempts`) is spent."""

TRANSIENT = ("ChannelError", "ChannelTimeout")
"""Attempt failures that are the provider's (a retryable ChannelError is a 5xx or an
unreachable provider); ledger and fence failures are ours and say nothing of it."""


class OutageWatch(Interceptor):
    """Raises the outage alert of a send that keeps failing at its provider."""

    def __init__(self, ledger: Ledger, after: int = OUTAGE_ALERT_AFTER) -> None:
        self._ledger = ledger
        self._after = after

    def intercept_activity(self, next: ActivityInboundInterceptor,
                           ) -> ActivityInboundInterceptor:
        return _Watch(next, self)

    async def failed(self, req: SendMessage, err: ApplicationError) -> None:
        """After a transient provider failure: alert once the message's provider calls
        reach the threshold. Best effort: a ledger that is down only delays the alert to a
        later attempt."""
        try:
            calls = await self._provider_calls(req.idempotency_key)
            if calls < self._after:
                return
            created = await self._ledger.record_alert(OpsAlert(
                idempotency_key=f"{req.case_id}:channel-outage:{req.idempotency_key}",
                case_id=req.case_id, workflow_id=req.workflow_id, loan_id=req.loan_id,
                subject=f"[{req.loan_id}] {req.channel} provider failing: {req.template} "
                        f"({req.step}) delayed",
                body=f"The {req.channel} provider failed this message {calls} times (last: "
                     f"{err.message[:200]}). It is retried with back-off and is not sent "
                     f"after {req.not_after.isoformat()}, when its lawful window closes.",
                raised_at=activity.info().current_attempt_scheduled_time))
        except Exception as fault:  # never hide the send's own failure
            log.warning("outage alert not recorded", loan_id=req.loan_id,
                        error=type(fault).__name__)
            return
        if created:
            log.warning("channel provider failing", loan_id=req.loan_id, channel=req.channel,
                        step=req.step, provider_calls=calls)

    async def _provider_calls(self, key: str) -> int:
        rows = await self._ledger.rows(t.contact_attempts, idempotency_key=key)
        return int(rows[0]["channel_attempts"]) if rows else 0


class _Watch(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, watch: OutageWatch) -> None:
        super().__init__(next)
        self._watch = watch

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except ApplicationError as err:
            req = input.args[0] if input.args else None
            if (activity.info().activity_type == SEND_MESSAGE and err.type in TRANSIENT
                    and not err.non_retryable and isinstance(req, SendMessage)):
                await self._watch.failed(req, err)
            raise

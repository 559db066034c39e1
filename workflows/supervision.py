"""What keeps a loan from stalling silently: ledger calls that wait out an outage in the
open, and alerts that do not depend on the ledger (its children are watched by
`workflows.children`).

- Ledger writes retry with back-off (a write the ledger refuses - a constraint or data
  error - is not retried within the call); when they keep failing, or are refused, the
  loan says so where the ledger is not needed: a `NeedsAttention` search attribute, an
  error log line and a worker metric, then it tries again later (a deploy may have fixed
  a refusal), for as long as it takes: a fact is never dropped.
- Every ops alert is logged when queued, with a key fixed then, and written after (with
  the ledger entries of the same moment, in one `record_entries` activity).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.case.aggregate import Collection
    from duecourse.temporal.contracts import OpsAlert
    from duecourse.temporal.failures import failure_text

LEDGER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                           maximum_interval=timedelta(seconds=30), maximum_attempts=7)
"""About a minute of retries inside one call; beyond that the loan raises its hand."""
LEDGER_WAIT_FIRST = timedelta(minutes=1)
LEDGER_WAIT_MAX = timedelta(minutes=30)

ATTENTION_METRIC = "duecourse_attention_raised"
ATTENTION_CLEARED_METRIC = "duecourse_attention_cleared"
"""Counters (per kind): raised minus cleared is how many loans need attention now."""


class Supervision:
    """Mixed into LoanCollectionWorkflow, which provides the state and `_publish`."""

    _c: Collection
    _alerts: list[OpsAlert]

    def _publish(self) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    # ------------------------------------------------------------------ alerts
    def _queue_alert(self, subject: str, body: str) -> None:
        """Log now (the ledger may be what is down), write with the loop; the key is fixed
        here, so two alerts in one workflow task are both kept."""
        c = self._c
        workflow.logger.warning("ops alert", extra={"loan_id": c.loan.loan_id,
                                                     "alert": subject})
        self._alerts.append(OpsAlert(
            idempotency_key=f"{c.state.case_id}:{c.state.next_alert_key(subject)}",
            case_id=c.state.case_id, workflow_id=workflow.info().workflow_id,
            loan_id=c.loan.loan_id, subject=f"[{c.loan.loan_id}] {subject}", body=body,
            raised_at=workflow.now()))

    # ------------------------------------------------------------------ ledger
    async def _ledger_call(self, activity: str, arg: Any, what: str,
                           result_type: type | None = None,
                           fatal: tuple[str, ...] = ()) -> Any:
        """Run a ledger activity until it succeeds. While it keeps failing, the loan needs
        attention; a failure of a type in `fatal` fails the workflow instead."""
        wait = LEDGER_WAIT_FIRST
        while True:
            try:
                result = await workflow.execute_activity(
                    activity, arg, result_type=result_type,
                    start_to_close_timeout=timedelta(seconds=30), retry_policy=LEDGER_RETRY)
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.type in fatal:
                    raise ApplicationError(cause.message, type=cause.type,
                                           non_retryable=True) from None
                refused = isinstance(cause, ApplicationError) and cause.non_retryable
                self._needs_attention("ledger_refused" if refused else "ledger",
                                      f"{what}: {failure_text(err)}")
                await workflow.sleep(wait, summary=f"retry {what}")
                wait = min(wait * 2, LEDGER_WAIT_MAX)
                continue
            self._attention_cleared("ledger")
            self._attention_cleared("ledger_refused")
            return result

    def _needs_attention(self, kind: str, reason: str) -> None:
        first = self._c.needs_attention(kind, reason)
        workflow.logger.error("loan needs attention", extra={
            "loan_id": self._c.loan.loan_id, "attention": kind, "reason": reason})
        if first:
            workflow.metric_meter().create_counter(
                ATTENTION_METRIC, "loans that could not go on by themselves",
            ).add(1, {"kind": kind})
            self._publish()

    def _attention_cleared(self, kind: str) -> None:
        if not self._c.attention_cleared(kind):
            return
        workflow.logger.info("loan no longer needs attention", extra={
            "loan_id": self._c.loan.loan_id, "attention": kind})
        workflow.metric_meter().create_counter(
            ATTENTION_CLEARED_METRIC, "loans that went on by themselves again",
        ).add(1, {"kind": kind})
        self._publish()

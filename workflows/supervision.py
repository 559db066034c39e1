"""What keeps a loan from stalling silently: supervised children, ledger calls that wait
out an outage in the open, and alerts that do not depend on the ledger.

- Children (plan, legal case, event delivery) are started once - a reset or a retry finds
  the same id and adopts it - and watched: one that fails, times out or is terminated is
  recorded, ops are told, and the loan returns to a live state (`domain.supervision`).
- Ledger writes retry with back-off (a write the ledger refuses - a constraint or data
  error - is not retried within the call); when they keep failing, or are refused, the
  loan says so where the ledger is not needed: a `NeedsAttention` search attribute, an
  error log line and a worker metric, then it tries again later (a deploy may have fixed
  a refusal), for as long as it takes: a fact is never dropped.
- Every ops alert is logged when queued, with a key fixed then, and written after.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.case.aggregate import Collection
    from duecourse.domain.case.supervision import ChildKind, child_failed
    from duecourse.domain.entries import LedgerEntry
    from duecourse.domain.events import DeliveryReport
    from duecourse.temporal.contracts import ALERT_OPS, AWAIT_WORKFLOW, OpsAlert, WorkflowEnding
    from duecourse.temporal.failures import failure_text

LEDGER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                           maximum_interval=timedelta(seconds=30), maximum_attempts=7)
"""About a minute of retries inside one call; beyond that the loan raises its hand."""
ADOPTED_WATCH = timedelta(days=800)
"""An adopted plan or legal case is watched for as long as it may run."""
LEDGER_WAIT_FIRST = timedelta(minutes=1)
LEDGER_WAIT_MAX = timedelta(minutes=30)

ATTENTION_METRIC = "duecourse_attention_raised"
ATTENTION_CLEARED_METRIC = "duecourse_attention_cleared"
"""Counters (per kind): raised minus cleared is how many loans need attention now."""


class Supervision:
    """Mixed into LoanCollectionWorkflow, which provides the state and `_apply`."""

    _c: Collection
    _alerts: list[OpsAlert]
    _deliveries_open: set[str]
    _watchers: list[asyncio.Task[None]]  # held so the event loop keeps them alive

    def _apply(self, entries: list[LedgerEntry]) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    def _publish(self) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    # ------------------------------------------------------------------ children
    async def _start_child(self, kind: ChildKind, workflow_type: str, arg: Any, child_id: str,
                           summary: str, result_type: type | None = None) -> None:
        """Start a child once and watch it; one that already exists is left as it is."""
        try:
            handle = await workflow.start_child_workflow(
                workflow_type, arg, id=child_id, parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=summary, result_type=result_type)
        except WorkflowAlreadyStartedError:  # started before a reset: the same child
            workflow.logger.info("child already exists; not started again",
                                 extra={"child": child_id})
            if kind != "event_delivery":  # its end goes to the run that started it
                self._watchers.append(asyncio.create_task(self._watch_adopted(kind,
                                                                              child_id)))
            return
        if kind == "event_delivery":
            self._deliveries_open.add(child_id)
        self._watchers.append(asyncio.create_task(self._watch(kind, child_id, handle)))

    async def _watch(self, kind: ChildKind, child_id: str,
                     handle: workflow.ChildWorkflowHandle[Any, Any]) -> None:
        problem = ""
        try:
            result = await handle
            if isinstance(result, DeliveryReport) and (result.failed or result.gave_up):
                problem = result.gave_up or f"refused by webhook(s) {', '.join(result.failed)}"
        except ChildWorkflowError as err:
            problem = failure_text(err)
        finally:
            self._deliveries_open.discard(child_id)
        if problem:
            entries, subject = child_failed(self._c, kind, child_id, problem, workflow.now())
            self._apply(entries)
            self._queue_alert(subject, problem)

    async def _watch_adopted(self, kind: ChildKind, child_id: str) -> None:
        """Watch a child another run started (it reports its end to that run)."""
        ending = await workflow.execute_activity(
            AWAIT_WORKFLOW, child_id, result_type=WorkflowEnding,
            start_to_close_timeout=ADOPTED_WATCH, heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=f"watch {child_id}")
        if not ending.completed:
            entries, subject = child_failed(self._c, kind, child_id, ending.why,
                                            workflow.now())
            self._apply(entries)
            self._queue_alert(subject, ending.why)

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

    async def _send_alerts(self) -> None:
        while self._alerts:
            await self._ledger_call(ALERT_OPS, self._alerts[0], "recording an ops alert")
            self._alerts.pop(0)

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
        s = self._c.state
        first = kind not in s.attention
        s.attention[kind] = reason
        workflow.logger.error("loan needs attention", extra={
            "loan_id": self._c.loan.loan_id, "attention": kind, "reason": reason})
        if first:
            workflow.metric_meter().create_counter(
                ATTENTION_METRIC, "loans that could not go on by themselves",
            ).add(1, {"kind": kind})
            self._publish()

    def _attention_cleared(self, kind: str) -> None:
        s = self._c.state
        if s.attention.pop(kind, None) is None:
            return
        workflow.logger.info("loan no longer needs attention", extra={
            "loan_id": self._c.loan.loan_id, "attention": kind})
        workflow.metric_meter().create_counter(
            ATTENTION_CLEARED_METRIC, "loans that went on by themselves again",
        ).add(1, {"kind": kind})
        self._publish()

"""What the collection loop does when a planned action falls due, one method per kind.

`ACTIONS` maps each `ActionKind` the planner plans to the method that carries it out;
the methods only call the domain's transitions and the contact path, and hand the
entries they return to `_apply`. Deterministic: no I/O, no clock but `workflow.now()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

from duecourse.workflows.children import CaseChild, Children
from duecourse.workflows.contact_path import ContactPath

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.agreements import deals
    from duecourse.domain.compliance import Purpose
    from duecourse.domain.contact import notices
    from duecourse.domain.legal.case import DemandResult
    from duecourse.domain.planner import ActionKind, PlannedAction
    from duecourse.domain.policy import ContactStep
    from duecourse.domain.scoring import ScoreResult
    from duecourse.domain.work import tasks
    from duecourse.domain.work.contact_tasks import open_contact_task
    from duecourse.temporal.contracts import SCORE_LOAN, money_text
    from duecourse.temporal.failures import failure_text

SCORE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=30), maximum_attempts=5)
"""A scorer that keeps failing leaves the segment as it was (and ops are told)."""

Action = Callable[["PlannedActions", PlannedAction], Awaitable[None]]


class PlannedActions(ContactPath):
    """Mixed into LoanCollectionWorkflow, which provides the state, `_apply`, `_children`
    and (through Supervision) `_queue_alert`."""

    _children: Children

    def _queue_alert(self, subject: str, body: str) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    async def _execute(self, action: PlannedAction) -> None:
        await ACTIONS[action.kind](self, action)

    # ------------------------------------------------------------------ transitions
    async def _write_off(self, action: PlannedAction) -> None:
        self._apply(self._c.write_off(workflow.now()))

    async def _resume(self, action: PlannedAction) -> None:
        self._apply(self._c.sync_pause(workflow.now()))

    async def _check_settlement(self, action: PlannedAction) -> None:
        self._apply(deals.check_settlement(self._c, workflow.now()))

    async def _check_promise(self, action: PlannedAction) -> None:
        self._apply(self._c.check_promise(workflow.now()))

    async def _end_reminder(self, action: PlannedAction) -> None:
        self._apply(self._c.end_reminder(workflow.now()))

    async def _end_negotiation(self, action: PlannedAction) -> None:
        self._apply(self._c.end_negotiation(workflow.now()))

    async def _task_sla(self, action: PlannedAction) -> None:
        c = self._c
        task = tasks.next_escalation(c)
        if task is not None:
            self._apply(tasks.escalate(c, task, workflow.now()))
            self._queue_alert(f"Task {task.task_id} ({task.kind.value}) missed its SLA",
                              f"Reassigned to {task.assignee}.")

    async def _score(self, action: PlannedAction) -> None:
        """Ask the scorer again (behaviour changed); a new segment changes the treatment,
        a scorer that fails keeps the segment as it was and tells ops."""
        c = self._c
        try:
            result = await workflow.execute_activity(
                SCORE_LOAN, c.begin_scoring(workflow.now()), result_type=ScoreResult,
                start_to_close_timeout=timedelta(seconds=30), retry_policy=SCORE_RETRY)
        except FailureError as err:
            why = failure_text(err)
            self._apply(c.scored(workflow.now(), None, why))
            self._queue_alert("Scoring failed; the segment is kept", why)
            return
        self._apply(c.scored(workflow.now(), result))

    # ------------------------------------------------------------------ contacts
    async def _contact_step(self, action: PlannedAction) -> None:
        assert action.step is not None
        c, now = self._c, workflow.now()
        if action.superseded:
            self._apply(c.skip_stale_steps(action.superseded, now))
            self._queue_alert(f"{len(action.superseded)} planned contact(s) skipped as stale",
                              f"Reached too late: {', '.join(action.superseded)}; a later "
                              "step goes instead.")
        if action.step.as_task:
            self._open_contact_task(action.step, now)
            return
        outcome = await self._contact(action.step, action.purpose)
        if outcome.status not in ("deferred", "expired"):
            status = "skipped" if outcome.status == "stopped" else outcome.status
            self._apply(c.record_step(action.step.name, status, workflow.now(),
                                      outcome.detail))

    async def _plan_reminder(self, action: PlannedAction) -> None:
        assert action.step is not None and action.instalment is not None
        context = self._instalment_context(action.instalment)
        status = "skipped"
        if context is not None:
            status = (await self._contact(action.step, Purpose.COLLECTION,
                                          extra=context)).status
        if status not in ("deferred", "expired"):
            self._c.plan_reminder_done(action.instalment)

    async def _required_notice(self, action: PlannedAction) -> None:
        """A notice the law requires before going on; one that cannot be sent goes to a
        person (a send_notice task) instead of being retried until write-off."""
        assert action.step is not None
        c, step = self._c, action.step
        outcome = await self._contact(step, action.purpose)
        if outcome.status in ("deferred", "expired", "stopped"):
            return  # asked again when it may go (a freeze holds it back meanwhile)
        if outcome.status == "sent":
            self._apply(c.record_step(step.name, "sent", workflow.now(), outcome.detail))
            return
        if c.state.is_closed:
            return
        task, entries = notices.notice_not_sent(c, step, outcome.detail, workflow.now())
        self._apply(entries)
        self._queue_alert(f"{step.template} not sent: task {task.task_id} for a person",
                          outcome.detail)

    async def _send_demand(self, action: PlannedAction) -> None:
        assert action.step is not None
        c, step = self._c, action.step
        outcome = await self._contact(step, Purpose.DEMAND)
        if outcome.status in ("deferred", "expired", "stopped"):
            return  # asked again when it may go (a freeze holds the demand back)
        now = workflow.now()
        sent = outcome.status == "sent"
        self._apply(c.record_step(step.name, outcome.status, now, outcome.detail))
        self._apply(c.demand_sent(now, sent, outcome.detail))
        if (case := c.state.legal.case) is not None:
            self._children.tell(CaseChild(case.workflow_id).demand_result(
                DemandResult(delivered=sent, detail=outcome.detail)))
        if not sent:
            self._queue_alert("Demand letter not sent", outcome.detail)

    def _open_contact_task(self, step: ContactStep, now: datetime) -> None:
        """A call or visit for a person to make: the engine decides first whether it may
        happen at all now (a blocked one is recorded, a deferred one waits)."""
        open_contact_task(self._c, step, now, self._apply)

    def _instalment_context(self, number: int) -> dict[str, str] | None:
        """Template values for a reminder about instalment `number` of the running plan;
        None when there is no such instalment left to remind about."""
        plan = self._c.state.agreements.active_plan
        if plan is None or not 1 <= number <= len(plan.instalments):
            return None
        item = plan.instalments[number - 1]
        return {"instalment_number": str(number), "instalment_due": item.due_date.isoformat(),
                "instalment_amount": money_text(item.remaining, plan.currency)}


ACTIONS: dict[ActionKind, Action] = {
    ActionKind.WRITE_OFF: PlannedActions._write_off,
    ActionKind.RESUME: PlannedActions._resume,
    ActionKind.SCORE: PlannedActions._score,
    ActionKind.TASK_SLA: PlannedActions._task_sla,
    ActionKind.CHECK_SETTLEMENT: PlannedActions._check_settlement,
    ActionKind.PLAN_REMINDER: PlannedActions._plan_reminder,
    ActionKind.CHECK_PROMISE: PlannedActions._check_promise,
    ActionKind.END_REMINDER: PlannedActions._end_reminder,
    ActionKind.END_NEGOTIATION: PlannedActions._end_negotiation,
    ActionKind.CONTACT: PlannedActions._contact_step,
    ActionKind.VALIDATION_NOTICE: PlannedActions._required_notice,
    ActionKind.FORBEARANCE_OFFER: PlannedActions._required_notice,
    ActionKind.SEND_DEMAND: PlannedActions._send_demand,
}

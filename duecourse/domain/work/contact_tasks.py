"""A call or visit step becomes a task for a person - once the compliance engine has said
it may happen now. One definition for the collection workflow and the simulator, so both
record the same decision, block and task for the same step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from duecourse.domain.case.aggregate import Collection
from duecourse.domain.compliance import Verdict
from duecourse.domain.contact.recipients import recipient_for
from duecourse.domain.entries import LedgerEntry
from duecourse.domain.policy import Channel, ContactStep
from duecourse.domain.work import tasks
from duecourse.domain.work.queue import Task, TaskKind


def open_contact_task(c: Collection, step: ContactStep, now: datetime,
                      apply: Callable[[list[LedgerEntry]], object]) -> Task | None:
    """The task opened for `step`, or None: no address or blocked (both recorded), or
    deferred (the decision is recorded; the step waits). `apply` records entries in order,
    as each one is decided."""
    address = recipient_for(step.channel, c.loan.borrower)
    if address is None:
        apply(c.record_step(step.name, "blocked", now, f"no {step.channel} contact details"))
        return None
    decision = c.decide_contact(step.channel, address, now,
                                collectors=c.pack.min_visit_collectors or 1)
    apply(c.record_decision(step.name, step.channel, address, decision))
    if decision.verdict is Verdict.DEFERRED:
        return None
    if decision.verdict is Verdict.BLOCKED:
        apply(c.record_step(step.name, "blocked", now, f"{decision.code}: {decision.detail}"))
        return None
    kind = TaskKind.FIELD_VISIT if step.channel is Channel.VISIT else TaskKind.CALL_BORROWER
    task, entries = tasks.open_task(c, kind, step.name, now, note=step.template)
    apply(entries + c.record_step(step.name, "task", now, task.task_id))
    return task

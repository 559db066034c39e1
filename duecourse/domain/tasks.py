"""Task lifecycle: open with an SLA, escalate to supervisors when missed, resolve, cancel."""

from __future__ import annotations

from datetime import datetime

from duecourse.domain.actor import SYSTEM, Actor
from duecourse.domain.collection import Collection
from duecourse.domain.entries import LedgerEntry, TaskRecorded
from duecourse.domain.worklist import Task, TaskKind, TaskStatus


def task_entry(task: Task, now: datetime, actor: Actor = SYSTEM) -> TaskRecorded:
    return TaskRecorded(key=f"task:{task.task_id}:{task.version}", occurred_at=now,
                        actor=actor, task=task.model_copy(deep=True))


def open_task(c: Collection, kind: TaskKind, subject: str, now: datetime,
              assignee: str | None = None, note: str = "") -> tuple[Task, list[LedgerEntry]]:
    rules = c.policy.tasks
    sla = {TaskKind.CALL_BORROWER: rules.call_sla, TaskKind.FIELD_VISIT: rules.visit_sla,
           TaskKind.REVIEW_HARDSHIP: rules.hardship_review_sla}.get(kind, rules.approval_sla)
    s = c.state
    task = Task(task_id=f"{c.loan.loan_id}-{s.case_id[:6]}-T{len(s.tasks) + 1}", kind=kind,
                subject=subject, assignee=assignee or s.assigned_agent or rules.default_queue,
                created_at=now, due_at=now + sla, note=note)
    s.tasks.append(task)
    return task, [task_entry(task, now)]


def find(c: Collection, task_id: str) -> Task | None:
    return next((t for t in c.state.tasks if t.task_id == task_id), None)


def resolve(c: Collection, task: Task, outcome: str, actor: Actor, now: datetime,
            note: str = "") -> list[LedgerEntry]:
    task.status, task.outcome, task.completed_by, task.completed_at = (
        TaskStatus.DONE, outcome, actor, now)
    task.note = note or task.note
    task.version += 1
    return [task_entry(task, now, actor)]


def resolve_subject(c: Collection, kind: TaskKind, subject: str, outcome: str, actor: Actor,
                    now: datetime) -> list[LedgerEntry]:
    """Close the open task about `subject` (decided another way, e.g. a direct update)."""
    entries: list[LedgerEntry] = []
    for task in c.state.open_tasks:
        if task.kind is kind and task.subject == subject:
            entries += resolve(c, task, outcome, actor, now, "decided directly")
    return entries


def next_escalation(c: Collection) -> Task | None:
    """The open task whose SLA runs out first, among those not yet escalated."""
    pending = [t for t in c.state.open_tasks if t.escalated_at is None]
    return min(pending, key=lambda t: t.due_at, default=None)


def escalate(c: Collection, task: Task, now: datetime) -> list[LedgerEntry]:
    """SLA missed: the task moves to the supervisor queue, once, and it is recorded."""
    previous = task.assignee
    task.assignee, task.escalated_at = c.policy.tasks.supervisor_queue, now
    task.version += 1
    return [task_entry(task, now),
            c._event("task_escalated", now, task=task.task_id, kind=task.kind,
                     previous_assignee=previous, assignee=task.assignee,
                     sla_missed_by=str(now - task.due_at))]


def cancel_pending(c: Collection, now: datetime, why: str) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for task in c.state.open_tasks:
        task.status, task.note = TaskStatus.CANCELLED, why
        task.version += 1
        entries.append(task_entry(task, now))
    return entries

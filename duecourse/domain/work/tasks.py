"""Task lifecycle: open with an SLA, escalate to supervisors when missed, resolve, cancel -
and the supervisor's review of a contact an agent reported that broke a rule."""

from __future__ import annotations

from datetime import datetime

from duecourse.domain.actor import SYSTEM, Actor, ActorKind
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.contact.outcomes import ReportCheck
from duecourse.domain.entries import LedgerEntry, TaskRecorded
from duecourse.domain.work.queue import Task, TaskKind, TaskStatus


def task_entry(task: Task, now: datetime, actor: Actor = SYSTEM) -> TaskRecorded:
    return TaskRecorded(key=f"task:{task.task_id}:{task.version}", occurred_at=now,
                        actor=actor, task=task.model_copy(deep=True))


def open_task(c: Collection, kind: TaskKind, subject: str, now: datetime,
              assignee: str | None = None, note: str = "") -> tuple[Task, list[LedgerEntry]]:
    rules = c.policy.tasks
    sla = {TaskKind.CALL_BORROWER: rules.call_sla, TaskKind.FIELD_VISIT: rules.visit_sla,
           TaskKind.REVIEW_HARDSHIP: rules.hardship_review_sla}.get(kind, rules.approval_sla)
    s = c.state
    task = Task(task_id=f"{c.loan.loan_id}-{s.case_id[:6]}-T{len(s.work.tasks) + 1}", kind=kind,
                subject=subject, assignee=assignee or s.work.assigned_agent or rules.default_queue,
                created_at=now, due_at=now + sla, note=note)
    s.work.tasks.append(task)
    return task, [task_entry(task, now)]


def find(c: Collection, task_id: str) -> Task | None:
    return next((t for t in c.state.work.tasks if t.task_id == task_id), None)


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
    for task in c.state.work.open_tasks:
        if task.kind is kind and task.subject == subject:
            entries += resolve(c, task, outcome, actor, now, "decided directly")
    return entries


def next_escalation(c: Collection) -> Task | None:
    """The open task whose SLA runs out first, among those not yet escalated."""
    pending = [t for t in c.state.work.open_tasks if t.escalated_at is None]
    return min(pending, key=lambda t: t.due_at, default=None)


def escalate(c: Collection, task: Task, now: datetime) -> list[LedgerEntry]:
    """SLA missed: the task moves to the supervisor queue, once, and it is recorded."""
    previous = task.assignee
    task.assignee, task.escalated_at = c.policy.tasks.supervisor_queue, now
    task.version += 1
    return [task_entry(task, now),
            c.record_event("task_escalated", now, task=task.task_id, kind=task.kind,
                           previous_assignee=previous, assignee=task.assignee,
                           sla_missed_by=str(now - task.due_at))]


def cancel_pending(c: Collection, now: datetime, why: str) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for task in c.state.work.open_tasks:
        task.status, task.note = TaskStatus.CANCELLED, why
        task.version += 1
        entries.append(task_entry(task, now))
    return entries


def review_reported_violation(c: Collection, report: ContactOutcomeReport, check: ReportCheck,
                              now: datetime) -> tuple[Task | None, list[LedgerEntry]]:
    """A reported contact broke rules (`check`, from `Collection.contact_check` before it
    was recorded): the ledger says so and a supervisor reviews it, so it is neither
    accepted silently nor left for the audit to find. The contact itself stays recorded -
    it happened, and the limits count it. A loan already closing opens no task (nobody
    could complete it); the event still says what was broken. PII-free: rules, codes and
    who reported it, never the number, address or person."""
    task: Task | None = None
    opened: list[LedgerEntry] = []
    if not c.state.is_closed:
        task, opened = open_task(c, TaskKind.REVIEW_VIOLATION,
                                 f"reported contact {check.local_time}"[:128], now,
                                 assignee=c.policy.tasks.supervisor_queue,
                                 note=check.summary(report))
    return task, [c.record_event(
        "contact_violation_reported", now, report.actor, channel=report.channel,
        recipient_kind=report.kind, local_time=check.local_time,
        codes=[v.code for v in check.violations], rules=[v.rule for v in check.violations],
        task=task.task_id if task else None), *opened]


def wants_answer(c: Collection, report: ContactOutcomeReport) -> bool:
    """The borrower wrote to us themselves (an SMS reply came in) on a loan still open."""
    return (report.result is ContactResult.BORROWER_REPLIED and not c.state.is_closed
            and report.actor.kind is ActorKind.BORROWER and bool(report.note))


def answer_reply(c: Collection, report: ContactOutcomeReport,
                 now: datetime) -> list[LedgerEntry]:
    """An agent calls the borrower back about what they wrote: the task carries their
    text, which nothing else in the work queue shows."""
    _, entries = open_task(c, TaskKind.CALL_BORROWER, f"{report.channel} reply", now,
                           note=report.note)
    return entries

"""A borrower asks to be called back at a time they choose: a call task for an agent,
due at that time, once the compliance engine allows a call to the borrower then.

The engine judges the call as it would any call at that moment (contact hours in the
borrower's zone, inconvenient times they named, holds, disputes, opt-outs, the limits
as they stand now); a time it would not allow is refused with its reason, so the task
never asks an agent for an unlawful call. Pure: the workflow's update calls it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime

from duecourse.domain.actor import Actor
from duecourse.domain.calendar import zone
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import Command, Note
from duecourse.domain.contact.recipients import recipient_for
from duecourse.domain.entries import LedgerEntry
from duecourse.domain.policy import Channel
from duecourse.domain.work.queue import Task, TaskKind
from duecourse.domain.work.tasks import open_task, task_entry

MAX_AHEAD = timedelta(days=14)
SUBJECT = "callback"


class CallbackRequest(Command):
    """Call the borrower at `at` (an aware time; the page asks in the borrower's zone)."""

    at: AwareDatetime
    actor: Actor
    note: Note = ""


def _local(c: Collection, at: datetime) -> str:
    return at.astimezone(zone(c.tz)).strftime("%Y-%m-%d %H:%M")


def callback_problem(c: Collection, req: CallbackRequest, now: datetime) -> str | None:
    """Why this call back cannot be booked, or None."""
    s = c.state
    if s.is_closed:
        return f"the loan is closed ({s.outcome})"
    when = _local(c, req.at)
    if req.at <= now:
        return f"the call-back time {when} has passed"
    if req.at > now + MAX_AHEAD:
        return f"the call-back time {when} is more than {MAX_AHEAD.days} days ahead"
    if any(t.kind is TaskKind.CALL_BORROWER and t.subject == SUBJECT
           for t in s.work.open_tasks):
        return "a call back is already booked"
    address = recipient_for(Channel.VOICE, c.loan.borrower)
    if address is None:
        return "no phone number on file"
    decision = c.decide_contact(Channel.VOICE, address, req.at)
    if not decision.allowed:
        return f"we may not call at {when}: {decision.detail or decision.code}"
    return None


def book_callback(c: Collection, req: CallbackRequest,
                  now: datetime) -> tuple[Task, list[LedgerEntry]]:
    if problem := callback_problem(c, req, now):
        raise ValueError(problem)
    note = f"call back at {_local(c, req.at)} (borrower's time), as asked"
    task, _ = open_task(c, TaskKind.CALL_BORROWER, SUBJECT, now,
                        note=f"{note}; {req.note}" if req.note else note)
    task.due_at = req.at  # the borrower's time, not the call SLA
    return task, [task_entry(task, now, req.actor)]

"""A borrower asks to be called back at a time they choose: a call task for an agent,
due at that time, once the compliance engine allows a call to the borrower then.

The engine judges the call as it would any call at that moment (contact hours in the
borrower's zone, inconvenient times they named, holds, disputes, opt-outs, the limits
as they stand now); a time it would not allow is refused with its reason and the rule,
so the task never asks an agent for an unlawful call. The decision on the asked time is
recorded with the task (a ComplianceDecided entry, as for any other contact decision).
Pure: the workflow's update calls it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime

from duecourse.domain.actor import Actor
from duecourse.domain.calendar import zone
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import Command, Note
from duecourse.domain.compliance.model import Decision, Purpose, RecipientKind
from duecourse.domain.contact.recipients import recipient_for
from duecourse.domain.entries import ComplianceDecided, LedgerEntry
from duecourse.domain.policy import Channel
from duecourse.domain.work.queue import Task, TaskKind
from duecourse.domain.work.tasks import open_task, task_entry

MAX_AHEAD = timedelta(days=14)
SUBJECT = "callback"
STEP = "callback"
"""The step of the compliance decision recorded with a call back's task."""
RULE_MARK = "rule "
"""Before the rule's reference in a refusal ("...: outside lawful contact hours; rule 12
CFR 1006.6(b)(1)(i): ..."): the page shows the rule in the borrower's words from it."""


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
    decision = _decision(c, req, address)
    if not decision.allowed:
        why = decision.detail or decision.code
        return f"we may not call at {when}: {why}" + (f"; {RULE_MARK}{decision.rule}"
                                                       if decision.rule else "")
    return None


def _decision(c: Collection, req: CallbackRequest, address: str) -> Decision:
    return c.decide_contact(Channel.VOICE, address, req.at)


def book_callback(c: Collection, req: CallbackRequest, now: datetime,
                  decided: bool = False) -> tuple[Task, list[LedgerEntry]]:
    """The call task; `decided`: with the engine's decision on the asked time recorded
    before it (a ComplianceDecided entry, step "callback", proposed at the asked time)."""
    if problem := callback_problem(c, req, now):
        raise ValueError(problem)
    note = f"call back at {_local(c, req.at)} (borrower's time), as asked"
    task, _ = open_task(c, TaskKind.CALL_BORROWER, SUBJECT, now,
                        note=f"{note}; {req.note}" if req.note else note)
    task.due_at = req.at  # the borrower's time, not the call SLA
    entries: list[LedgerEntry] = []
    if decided:
        address = recipient_for(Channel.VOICE, c.loan.borrower)
        assert address is not None  # callback_problem checked it
        d = _decision(c, req, address)
        entries.append(ComplianceDecided(
            key=f"decision:callback:{task.task_id}", occurred_at=now, actor=req.actor,
            step=STEP, channel=Channel.VOICE, recipient=address,
            recipient_kind=RecipientKind.DEBTOR, purpose=Purpose.COLLECTION,
            proposed_at=req.at, verdict=d.verdict, until=d.until,
            valid_until=d.valid_until, code=d.code, rule=d.rule,
            detail=d.detail or f"call back booked for {_local(c, req.at)} "
                               "(borrower's time)"))
    return task, [*entries, task_entry(task, now, req.actor)]

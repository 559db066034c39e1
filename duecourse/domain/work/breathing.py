"""A borrower asks for breathing space (GB Debt Respite Scheme) on their own word.

A breathing space is not ours to grant: a debt adviser applies and the Insolvency Service
registers it (reg 11); only then must we stop (and we start the BREATHING_SPACE hold when
told). On the borrower's word alone we do what is lawful and kind: a short pause while
the request is looked into (CONC 7.3.7AR: suspend for a reasonable period while the
customer seeks debt advice) and a review task for a supervisor, who checks the
Insolvency Service's register or points the borrower to free debt advice, and records
the moratorium once it is registered. Pure: the workflow's update calls it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from duecourse.domain.actor import Actor
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import Command, Note
from duecourse.domain.compliance import Hold, HoldKind
from duecourse.domain.entries import LedgerEntry
from duecourse.domain.work.queue import TaskKind
from duecourse.domain.work.tasks import open_task

REQUEST_PAUSE = timedelta(days=30)
"""The pause while a breathing space request is checked (a hardship-kind hold)."""
SUBJECT = "breathing_space_request"
REVIEW_NOTE = ("the borrower asked for breathing space; none is registered yet. Check the "
               "Insolvency Service's breathing space register or refer the borrower to free "
               "debt advice; start the breathing space hold once it is registered")


class BreathingSpaceAsk(Command):
    """The borrower's own request for breathing space (not a registered moratorium)."""

    actor: Actor
    note: Note = ""


def ask_problem(c: Collection, now: datetime) -> str | None:
    """Why the request cannot be taken, or None."""
    s = c.state
    if s.is_closed:
        return f"the loan is closed ({s.outcome})"
    if c.pack.breathing_space is None:
        return f"breathing space does not apply in {c.loan.jurisdiction}"
    holds = s.contacting.standing.holds
    if any(h.kind is HoldKind.BREATHING_SPACE and h.covers(now) for h in holds):
        return "a breathing space is already registered"
    if any(t.kind is TaskKind.REVIEW_MORATORIUM and t.subject == SUBJECT
           for t in s.work.open_tasks):
        return "a breathing space request is already being looked into"
    return None


def ask_for_breathing_space(c: Collection, req: BreathingSpaceAsk,
                            now: datetime) -> list[LedgerEntry]:
    if problem := ask_problem(c, now):
        raise ValueError(problem)
    st = c.state.contacting.standing
    entries = [c.record_event("breathing_space_requested", now, req.actor,
                              registered=False, note=req.note)]
    if not any(h.kind is HoldKind.HARDSHIP and h.covers(now) for h in st.holds):
        hold = Hold(kind=HoldKind.HARDSHIP, start=now, end=now + REQUEST_PAUSE,
                    reference=SUBJECT)
        st.holds.append(hold)
        entries.append(c.record_event("hold_started", now, req.actor, kind=hold.kind,
                                      start=hold.start, end=hold.end, reference=SUBJECT,
                                      note="while the breathing space request is checked"))
    note = f"{REVIEW_NOTE}; {req.note}" if req.note else REVIEW_NOTE
    entries += open_task(c, TaskKind.REVIEW_MORATORIUM, SUBJECT, now,
                         assignee=c.policy.tasks.supervisor_queue, note=note)[1]
    return entries + c.sync_pause(now, req.actor)

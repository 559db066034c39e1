"""What the workflow should do next, and when: one pure function over the state.

The workflow sets exactly one timer, to the earliest planned action, and re-plans whenever
a signal or update changes the state. Timing rules live here, testable without Temporal:
- steps anchored on the due date follow the borrower's wall clock across DST changes;
- contact (not letters) is moved into the policy's local contact hours;
- steps missed while the loan was paused or handed over late collapse into the latest one,
  so a borrower never receives a burst of stale reminders.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from duecourse.domain.calendar import next_time_within, wall_clock
from duecourse.domain.collection import Collection, LegalPhase, Stage
from duecourse.domain.policy import Anchor, Channel, ContactStep


class ActionKind(StrEnum):
    WRITE_OFF = "write_off"
    CHECK_PROMISE = "check_promise"
    SEND_DEMAND = "send_demand"
    CURE_EXPIRED = "cure_expired"
    APPROVAL_OVERDUE = "approval_overdue"
    END_REMINDER = "end_reminder"
    END_NEGOTIATION = "end_negotiation"
    CONTACT = "contact"


# Order among actions due at the same instant: closing and checks before contact.
_PRIORITY = list(ActionKind)


class PlannedAction(BaseModel):
    kind: ActionKind
    due_at: datetime
    step: ContactStep | None = None
    superseded: list[str] = []

    @property
    def description(self) -> str:
        if self.step is not None:
            return f"{self.step.channel} {self.step.template} ({self.step.name})"
        return self.kind.value.replace("_", " ")


def step_due(c: Collection, step: ContactStep) -> datetime:
    """When `step` of the current stage visit falls due, before contact hours."""
    if step.anchor is Anchor.DUE_DATE:
        return wall_clock(c.loan.due_date, step.offset, c.loan.borrower.timezone)
    return c.state.visit.entered_at + step.offset


def contact_time(c: Collection, moment: datetime, channel: Channel) -> datetime:
    """Earliest moment at or after `moment` inside the policy's local contact hours."""
    hours = c.policy.contact_hours
    if hours is None or channel is Channel.LETTER:
        return moment
    return next_time_within(moment, c.loan.borrower.timezone, hours.start, hours.end)


def write_off_at(c: Collection) -> datetime:
    day = c.loan.due_date + timedelta(days=c.policy.write_off_dpd)
    return wall_clock(day, timedelta(0), c.loan.borrower.timezone)


def _stage_steps(c: Collection) -> list[ContactStep]:
    if c.state.stage is Stage.REMINDER:
        return c.policy.reminder.steps
    if c.state.stage is Stage.NEGOTIATION:
        return c.policy.negotiation.steps
    return []


def _next_contact(c: Collection, now: datetime) -> PlannedAction | None:
    pending = sorted(
        ((step_due(c, s), i, s) for i, s in enumerate(_stage_steps(c))
         if not c.state.step_done(c.state.visit.visit, s.name)),
        key=lambda t: (t[0], t[1]),
    )
    if not pending:
        return None
    overdue = [p for p in pending if p[0] <= now]
    if overdue:
        *missed, (_, _, step) = overdue
        return PlannedAction(kind=ActionKind.CONTACT, step=step,
                             due_at=contact_time(c, now, step.channel),
                             superseded=[s.name for _, _, s in missed])
    due, _, step = pending[0]
    return PlannedAction(kind=ActionKind.CONTACT, step=step,
                         due_at=contact_time(c, due, step.channel))


def _reminder_end(c: Collection, contact: PlannedAction | None) -> datetime:
    rules = c.policy.reminder
    if rules.window_anchor is Anchor.DUE_DATE:
        end = wall_clock(c.loan.due_date, rules.window, c.loan.borrower.timezone)
    else:
        end = c.state.visit.entered_at + rules.window
    first = c.state.first_contact_at or (contact.due_at if contact else None)
    return max(end, first + rules.minimum_notice) if first else end


def plan(c: Collection, now: datetime) -> PlannedAction | None:
    """The next action for this loan, or None when it is closed or only awaits people."""
    s = c.state
    if s.is_closed:
        return None
    candidates = [PlannedAction(kind=ActionKind.WRITE_OFF, due_at=write_off_at(c))]
    promise = s.active_promise
    if promise is not None:
        candidates.append(PlannedAction(kind=ActionKind.CHECK_PROMISE, due_at=promise.check_at))
    elif s.stage in (Stage.REMINDER, Stage.NEGOTIATION):
        contact = _next_contact(c, now)
        if contact:
            candidates.append(contact)
        if s.stage is Stage.REMINDER:
            candidates.append(PlannedAction(kind=ActionKind.END_REMINDER,
                                            due_at=_reminder_end(c, contact)))
        elif s.negotiation_deadline is not None:
            candidates.append(PlannedAction(kind=ActionKind.END_NEGOTIATION,
                                            due_at=s.negotiation_deadline))
    if s.stage is Stage.LEGAL and s.legal_phase_at is not None:
        legal = c.policy.legal
        if s.legal_phase is LegalPhase.DEMAND_PENDING:
            candidates.append(PlannedAction(kind=ActionKind.SEND_DEMAND, due_at=s.legal_phase_at,
                                            step=legal.demand_letter))
        elif s.legal_phase is LegalPhase.CURE_PERIOD:
            candidates.append(PlannedAction(kind=ActionKind.CURE_EXPIRED,
                                            due_at=s.legal_phase_at + legal.cure_period))
        elif s.legal_phase is LegalPhase.AWAITING_APPROVAL:
            waits = s.approval_escalations + 1
            candidates.append(PlannedAction(
                kind=ActionKind.APPROVAL_OVERDUE,
                due_at=s.legal_phase_at + legal.approval_timeout * waits))
    return min(candidates, key=lambda a: (a.due_at, _PRIORITY.index(a.kind)))

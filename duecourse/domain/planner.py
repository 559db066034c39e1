"""What the workflow should do next, and when: one pure function over the state.

The workflow sets exactly one timer, to the earliest planned action, and re-plans whenever
a signal or update changes the state. Timing rules live here, testable without Temporal:
- steps anchored on the due date follow the borrower's wall clock across DST changes;
- a contact the compliance engine deferred waits for the time the engine named;
- steps missed while the loan was frozen or handed over late collapse into the latest
  one, so a borrower never receives a burst of stale reminders;
- while a dispute, hold, bankruptcy or death freezes collection, nothing but write-off
  (and the end of a timed hold) is planned;
- the legal stage's own timers (cure period, approval timeout) run in the LegalCase
  child workflow; the parent only sends the demand when the case asks for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from duecourse.domain.calendar import wall_clock
from duecourse.domain.collection import Collection, LegalPhase, Stage
from duecourse.domain.compliance import Purpose
from duecourse.domain.policy import Anchor, Channel, ContactStep
from duecourse.domain.tasks import next_escalation


class ActionKind(StrEnum):
    WRITE_OFF = "write_off"
    RESUME = "resume"
    CHECK_PROMISE = "check_promise"
    CHECK_SETTLEMENT = "check_settlement"
    TASK_SLA = "task_sla"
    SCORE = "score"
    PLAN_REMINDER = "plan_reminder"
    VALIDATION_NOTICE = "validation_notice"
    FORBEARANCE_OFFER = "forbearance_offer"
    SEND_DEMAND = "send_demand"
    END_REMINDER = "end_reminder"
    END_NEGOTIATION = "end_negotiation"
    CONTACT = "contact"


# Order among actions due at the same instant: closing and checks before contact.
_PRIORITY = list(ActionKind)

VALIDATION_STEP = ContactStep(name="validation-notice", channel=Channel.LETTER,
                              template="validation_notice")
FORBEARANCE_STEP = ContactStep(name="forbearance-offer", channel=Channel.EMAIL,
                               template="forbearance_offer")


def plan_reminder_step(plan_id: str, instalment: int) -> ContactStep:
    return ContactStep(name=f"{plan_id.lower()}-reminder-{instalment}", channel=Channel.SMS,
                       template="plan_instalment_reminder")


class PlannedAction(BaseModel):
    kind: ActionKind
    due_at: datetime
    step: ContactStep | None = None
    purpose: Purpose = Purpose.COLLECTION
    superseded: list[str] = []
    instalment: int | None = None

    @property
    def description(self) -> str:
        if self.step is not None:
            return f"{self.step.channel} {self.step.template} ({self.step.name})"
        return self.kind.value.replace("_", " ")


def step_due(c: Collection, step: ContactStep) -> datetime:
    """When `step` of the current stage visit falls due: its offset scaled by the segment's
    cadence, frozen time added back."""
    cadence = c.policy.treatment(c.state.segment).cadence
    offset = step.offset if cadence == 1 else timedelta(
        seconds=step.offset.total_seconds() * float(cadence))
    if step.anchor is Anchor.DUE_DATE:
        return wall_clock(c.loan.due_date, offset, c.loan.borrower.timezone)
    visit = c.state.visit
    return visit.entered_at + visit.paused + offset


def write_off_at(c: Collection) -> datetime:
    day = c.loan.due_date + timedelta(days=c.policy.write_off_dpd)
    return wall_clock(day, timedelta(0), c.loan.borrower.timezone)


def _stage_steps(c: Collection) -> list[ContactStep]:
    if c.state.stage is Stage.REMINDER:
        return c.policy.reminder.steps
    if c.state.stage is Stage.NEGOTIATION:
        return c.policy.negotiation.steps
    return []


def _when(c: Collection, step: ContactStep, due: datetime) -> datetime:
    deferred = c.state.deferral(step.name)
    return max(due, deferred) if deferred else due


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
                             due_at=_when(c, step, now),
                             superseded=[s.name for _, _, s in missed])
    due, _, step = pending[0]
    return PlannedAction(kind=ActionKind.CONTACT, step=step, due_at=_when(c, step, due))


def _reminder_end(c: Collection, contact: PlannedAction | None) -> datetime:
    rules, visit = c.policy.reminder, c.state.visit
    if rules.window_anchor is Anchor.DUE_DATE:
        end = wall_clock(c.loan.due_date, rules.window, c.loan.borrower.timezone)
    else:
        end = visit.entered_at + rules.window
    end += visit.paused
    first = c.state.first_contact_at or (contact.due_at if contact else None)
    return max(end, first + rules.minimum_notice) if first else end


def _special(c: Collection, kind: ActionKind, step: ContactStep, purpose: Purpose,
             now: datetime) -> PlannedAction:
    return PlannedAction(kind=kind, step=step, purpose=purpose,
                         due_at=_when(c, step, now))


def plan(c: Collection, now: datetime) -> PlannedAction | None:
    """The next action for this loan, or None when it is closed."""
    s = c.state
    if s.is_closed:
        return None
    candidates = [PlannedAction(kind=ActionKind.WRITE_OFF, due_at=write_off_at(c))]
    frozen = c.freeze_reason(now)
    if frozen is not None or s.paused_since is not None:
        hold = s.standing.hold_at(now)
        if frozen is None:
            candidates.append(PlannedAction(kind=ActionKind.RESUME, due_at=now))
        elif frozen.code == "hold" and hold is not None and hold.end is not None \
                and c.freeze_reason(hold.end) is None:
            candidates.append(PlannedAction(kind=ActionKind.RESUME, due_at=hold.end))
        return min(candidates, key=lambda a: (a.due_at, _PRIORITY.index(a.kind)))
    if s.rescore:
        candidates.append(PlannedAction(kind=ActionKind.SCORE, due_at=now))
    if (task := next_escalation(c)) is not None:
        candidates.append(PlannedAction(kind=ActionKind.TASK_SLA, due_at=task.due_at))
    promise, settlement = s.active_promise, s.open_settlement
    if promise is not None:
        candidates.append(PlannedAction(kind=ActionKind.CHECK_PROMISE, due_at=promise.check_at))
    if (active_plan := s.active_plan) is not None and s.plan_reminders:
        number = s.plan_reminders[0]
        step = plan_reminder_step(active_plan.plan_id, number)
        candidates.append(PlannedAction(kind=ActionKind.PLAN_REMINDER, step=step,
                                        instalment=number, due_at=_when(c, step, now)))
    if settlement is not None:  # accepted or awaiting a supervisor: both lapse
        candidates.append(PlannedAction(kind=ActionKind.CHECK_SETTLEMENT,
                                        due_at=settlement.check_at))
    if not s.agreement_active and s.stage in (Stage.REMINDER, Stage.NEGOTIATION):
        if c.pack.validation_notice_within and s.standing.validation_notice_at is None \
                and not s.step_done(s.visit.visit, VALIDATION_STEP.name):
            candidates.append(_special(c, ActionKind.VALIDATION_NOTICE, VALIDATION_STEP,
                                       Purpose.VALIDATION_NOTICE, now))
        else:
            contact = _next_contact(c, now)
            if contact:
                candidates.append(contact)
            if s.stage is Stage.REMINDER:
                candidates.append(PlannedAction(kind=ActionKind.END_REMINDER,
                                                due_at=_reminder_end(c, contact)))
        if s.forbearance_pending and not s.step_done(s.visit.visit, FORBEARANCE_STEP.name):
            candidates.append(_special(c, ActionKind.FORBEARANCE_OFFER, FORBEARANCE_STEP,
                                       Purpose.FORBEARANCE_OFFER, now))
        elif s.stage is Stage.NEGOTIATION and s.negotiation_deadline is not None \
                and not s.legal_barred and not s.forbearance_pending:
            due = max(s.negotiation_deadline, s.legal_not_before or s.negotiation_deadline)
            candidates.append(PlannedAction(kind=ActionKind.END_NEGOTIATION, due_at=due))
    if s.stage is Stage.LEGAL and s.legal_demand_requested and \
            s.legal_phase is LegalPhase.DEMAND_PENDING:
        demand = c.policy.legal.demand_letter  # the legal case asked for it
        candidates.append(PlannedAction(kind=ActionKind.SEND_DEMAND, step=demand,
                                        purpose=Purpose.DEMAND,
                                        due_at=_when(c, demand, now)))
    return min(candidates, key=lambda a: (a.due_at, _PRIORITY.index(a.kind)))

"""What the workflow should do next, and when: one pure function over the state.

The workflow sets exactly one timer, to the earliest planned action, and re-plans whenever
a signal or update changes the state. Timing rules live here, testable without Temporal:
- steps anchored on the due date follow the borrower's wall clock across DST changes;
- a contact the compliance engine deferred waits for the time the engine named;
- steps missed while the loan was frozen, handed over late or woken late collapse into
  the latest one only when the policy marks them `supersedable` (a stale nudge) and the
  borrower has already been contacted; any other missed step is sent late, within lawful
  hours, so no notice and no first contact is ever dropped;
- a segment's cadence stretches whole days, never the time of day, and a stage does not
  end before its last step has had its turn, so no step is lost by the stretch;
- write-off waits while an agreement (promise, plan, settlement) still runs, so a borrower
  paying on time is never written off;
- while a dispute, hold, bankruptcy or death freezes collection, nothing but write-off
  (and the end of a timed hold) is planned;
- the legal stage's own timers (cure period, approval timeout) run in the LegalCase
  child workflow; the parent only sends the demand when the case asks for it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from pydantic import BaseModel

from duecourse.domain.agreements.terms import InstalmentStatus
from duecourse.domain.calendar import wall_clock
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.state import LegalPhase, Stage
from duecourse.domain.compliance import Purpose
from duecourse.domain.contact.notices import FORBEARANCE_STEP, VALIDATION_STEP, waiting_for_person
from duecourse.domain.policy import Anchor, Channel, ContactStep
from duecourse.domain.work.tasks import next_escalation


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



def plan_reminder_step(plan_id: str, instalment: int, due: date) -> ContactStep:
    """The reminder of one instalment as it is due now: a rescheduled instalment is a new
    step (its own idempotency key), so it is reminded again."""
    return ContactStep(name=f"{plan_id.lower()}-reminder-{instalment}-{due:%Y%m%d}",
                       channel=Channel.SMS, template="plan_instalment_reminder",
                       templates={Channel.EMAIL: "plan_instalment_reminder"})


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


def stretch(offset: timedelta, cadence: Decimal) -> timedelta:
    """`offset` with its whole days multiplied by `cadence` (rounded half up) and its time
    of day kept: a 10:00 step stays at 10:00, on a later (or earlier) day."""
    if cadence == 1:
        return offset
    days = (Decimal(offset.days) * cadence).to_integral_value(rounding=ROUND_HALF_UP)
    return timedelta(days=int(days)) + (offset - timedelta(days=offset.days))


def step_due(c: Collection, step: ContactStep) -> datetime:
    """When `step` of the current stage visit falls due: its offset stretched by the
    segment's cadence, frozen time added back."""
    offset = stretch(step.offset, c.policy.treatment(c.state.segment).cadence)
    if step.anchor is Anchor.DUE_DATE:
        return wall_clock(c.loan.due_date, offset, c.tz)
    visit = c.state.visit
    return visit.entered_at + visit.paused + offset


def write_off_at(c: Collection) -> datetime:
    """Local midnight at the policy's write-off DPD (sooner under a demo clock) - or later,
    while an agreement runs."""
    day = c.loan.due_date + timedelta(days=c.policy.write_off_dpd)
    at = wall_clock(day, timedelta(0), c.tz)
    if c.policy.demo is not None:
        at = min(at, c.state.opened_at + c.policy.demo.write_off_after)
    running = agreement_ends_at(c)
    return max(at, running) if running is not None else at


def agreement_ends_at(c: Collection) -> datetime | None:
    """When the running agreement is judged at the latest: a promise or settlement at its
    check, a plan a day after its last unpaid instalment's grace (the plan judges it
    first). None without an agreement."""
    s, tz = c.state, c.tz
    ends: list[datetime] = []
    if (promise := s.agreements.active_promise) is not None:
        ends.append(promise.check_at)
    if (settlement := s.agreements.open_settlement) is not None:
        ends.append(settlement.check_at)
    if (plan := s.agreements.active_plan) is not None:
        unpaid = [i.due_date for i in plan.instalments if i.status is not InstalmentStatus.PAID]
        if unpaid:
            grace = c.policy.plans.grace_days
            ends.append(wall_clock(max(unpaid) + timedelta(days=grace + 2), timedelta(0), tz))
    return max(ends, default=None)


def _stage_steps(c: Collection) -> list[ContactStep]:
    if c.state.stage is Stage.REMINDER:
        return c.policy.reminder.steps
    if c.state.stage is Stage.NEGOTIATION:
        return c.policy.negotiation.steps
    return []


def _when(c: Collection, step: ContactStep, due: datetime) -> datetime:
    deferred = c.state.contacting.deferral(c.state.visit.visit, step.name)
    return max(due, deferred) if deferred else due


def _pending_steps(c: Collection) -> list[tuple[datetime, ContactStep]]:
    """The current stage visit's steps not yet done, in the order they fall due."""
    pending = sorted(
        ((step_due(c, s), i, s) for i, s in enumerate(_stage_steps(c))
         if not c.state.contacting.step_done(c.state.visit.visit, s.name)),
        key=lambda t: (t[0], t[1]),
    )
    return [(due, step) for due, _, step in pending]


def _next_contact(c: Collection, now: datetime) -> PlannedAction | None:
    """The next step to take. Of the steps already due, the earlier ones are superseded
    only when the policy allows it and the borrower has been contacted before; the first
    one that may not be dropped goes now (late), the stale ones before it are skipped."""
    pending = _pending_steps(c)
    if not pending:
        return None
    overdue = [step for due, step in pending if due <= now]
    if not overdue:
        due, step = pending[0]
        return PlannedAction(kind=ActionKind.CONTACT, step=step, due_at=_when(c, step, due))
    contacted = c.state.contacting.first_contact_at is not None
    superseded: list[str] = []
    for step in overdue[:-1]:
        if not (step.supersedable and contacted):
            break
        superseded.append(step.name)
    step = overdue[len(superseded)]
    return PlannedAction(kind=ActionKind.CONTACT, step=step, due_at=_when(c, step, now),
                         superseded=superseded)


def _last_step_at(c: Collection) -> datetime | None:
    """When the stage visit's last pending step is planned (deferrals included): the stage
    does not end before it, whatever the cadence stretched."""
    return max((_when(c, step, due) for due, step in _pending_steps(c)), default=None)


def _reminder_end(c: Collection, contact: PlannedAction | None) -> datetime:
    rules, visit = c.policy.reminder, c.state.visit
    if rules.window_anchor is Anchor.DUE_DATE:
        end = wall_clock(c.loan.due_date, rules.window, c.tz)
    else:
        end = visit.entered_at + rules.window
    end += visit.paused
    if (last := _last_step_at(c)) is not None:
        end = max(end, last)
    first = c.state.contacting.first_contact_at or (contact.due_at if contact else None)
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
        hold = s.contacting.standing.hold_at(now)
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
    promise, settlement = s.agreements.active_promise, s.agreements.open_settlement
    if promise is not None:
        candidates.append(PlannedAction(kind=ActionKind.CHECK_PROMISE, due_at=promise.check_at))
    if (active_plan := s.agreements.active_plan) is not None and s.agreements.plan_reminders:
        number = s.agreements.plan_reminders[0]
        items = active_plan.instalments
        due = items[number - 1].due_date if 1 <= number <= len(items) else None
        step = plan_reminder_step(active_plan.plan_id, number, due or active_plan.agreed_at)
        candidates.append(PlannedAction(kind=ActionKind.PLAN_REMINDER, step=step,
                                        instalment=number, due_at=_when(c, step, now)))
    if settlement is not None:  # accepted or awaiting a supervisor: both lapse
        candidates.append(PlannedAction(kind=ActionKind.CHECK_SETTLEMENT,
                                        due_at=settlement.check_at))
    if not s.agreement_active and s.stage in (Stage.REMINDER, Stage.NEGOTIATION):
        if c.pack.validation_notice_within and s.contacting.standing.validation_notice_at is None \
                and not s.contacting.step_done(s.visit.visit, VALIDATION_STEP.name) \
                and not waiting_for_person(c, VALIDATION_STEP.name):
            candidates.append(_special(c, ActionKind.VALIDATION_NOTICE, VALIDATION_STEP,
                                       Purpose.VALIDATION_NOTICE, now))
        else:
            contact = _next_contact(c, now)
            if contact:
                candidates.append(contact)
            if s.stage is Stage.REMINDER:
                candidates.append(PlannedAction(kind=ActionKind.END_REMINDER,
                                                due_at=_reminder_end(c, contact)))
        if s.contacting.forbearance_pending \
                and not s.contacting.step_done(s.visit.visit, FORBEARANCE_STEP.name) \
                and not waiting_for_person(c, FORBEARANCE_STEP.name):
            candidates.append(_special(c, ActionKind.FORBEARANCE_OFFER, FORBEARANCE_STEP,
                                       Purpose.FORBEARANCE_OFFER, now))
        elif s.stage is Stage.NEGOTIATION and s.negotiation_deadline is not None \
                and not s.legal.barred and not s.contacting.forbearance_pending:
            due = max(s.negotiation_deadline, s.legal.not_before or s.negotiation_deadline,
                      _last_step_at(c) or s.negotiation_deadline)
            candidates.append(PlannedAction(kind=ActionKind.END_NEGOTIATION, due_at=due))
    if s.stage is Stage.LEGAL and s.legal.demand_requested and \
            s.legal.phase is LegalPhase.DEMAND_PENDING:
        demand = c.policy.legal.demand_letter  # the legal case asked for it
        candidates.append(PlannedAction(kind=ActionKind.SEND_DEMAND, step=demand,
                                        purpose=Purpose.DEMAND,
                                        due_at=_when(c, demand, now)))
    return min(candidates, key=lambda a: (a.due_at, _PRIORITY.index(a.kind)))

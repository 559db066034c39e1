"""One loan's life in virtual time, on the workflow's own decision code.

`LoanRun` does what `LoanCollectionWorkflow` does, step for step, without Temporal: it
plans with `duecourse.domain.planner.plan`, carries each action out through the same
aggregate, task, deal, notice and compliance functions the workflow's mixins call
(`workflows/actions.py`, `contact_path.py`, `legal_progress.py`), and chooses channels with
the same `channel_options`. Timers become entries in a heap of (virtual time, sequence,
event); the borrower's doings (`Borrower`) are events in the same heap and enter through
the functions the workflow's signal and update handlers call. The children run here too:
a repayment plan as a `PlanRun` (the plan workflow's schedule code), the legal case as
timers for its cure period and approval, a supervisor's decision, and a legal partner
that takes every referral at once. The channel accepts every message at once. What the
simulation leaves out is listed in `duecourse.lab.simulator`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from duecourse.activities.scoring import Scorer
from duecourse.domain.agreements import deals
from duecourse.domain.agreements.terms import RepaymentPlan
from duecourse.domain.case.aggregate import Collection, scoring_entries
from duecourse.domain.case.state import LegalPhase
from duecourse.domain.compliance import Purpose, Verdict
from duecourse.domain.compliance.engine import DECISION_VALIDITY
from duecourse.domain.contact import notices
from duecourse.domain.contact.channels import channel_options, falls_back
from duecourse.domain.entries import ComplianceDecided, LedgerEntry, StageChanged
from duecourse.domain.legal import litigation
from duecourse.domain.legal.case import LegalCase, Referral
from duecourse.domain.loan import LoanIntake
from duecourse.domain.planner import ActionKind, PlannedAction, plan
from duecourse.domain.policy import Channel, ContactStep, Policy
from duecourse.domain.rules import RulesSnapshot
from duecourse.domain.work import tasks
from duecourse.domain.work.contact_tasks import open_contact_task
from duecourse.domain.work.queue import Task, TaskKind
from duecourse.lab.sim_ledger import LoanRows
from duecourse.lab.sim_plan import PlanRun
from duecourse.workflows.contact_path import TIME_BARRED

Handler = Callable[[], None]


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    what: Handler = field(compare=False)


@dataclass(frozen=True)
class Sent:
    """A contact the simulated channel accepted (the borrower may answer it)."""

    channel: Channel
    at: datetime
    purpose: Purpose


class LoanRun:
    """The loan's workflow as a discrete-event simulation; `on_sent` and `on_task` tell
    the borrower model of each message that went out and each call or visit task opened
    for a person."""

    def __init__(self, loan: LoanIntake, policy: Policy, rules: RulesSnapshot,
                 opened_at: datetime, case_id: str, scorer: Scorer, rows: LoanRows) -> None:
        self.now = opened_at
        self.rows = rows
        self.scorer = scorer
        self.on_sent: Callable[[Sent], None] = lambda sent: None
        self.on_task: Callable[[Task], None] = lambda task: None
        self.on_approval: Handler = lambda: None  # a legal referral awaits a supervisor
        self.plan: PlanRun | None = None  # the running (or last) plan's child
        self._heap: list[Event] = []
        self._seq = 0
        self._messages = 0
        self._legal_due: datetime | None = None  # the legal case's running timer
        self._legal_left: timedelta | None = None  # its time left while frozen
        self._legal_next: Handler | None = None
        self._legal_token = 0
        self._frozen = False
        self.c, opening = Collection.begin(loan, policy, opened_at, case_id=case_id)
        self._hand_over(opening, rules)

    # ------------------------------------------------------------ the event heap
    def at(self, when: datetime, what: Handler) -> None:
        """Schedule `what` (a borrower's act, a child's timer) at `when`."""
        self._seq += 1
        heapq.heappush(self._heap, Event(max(when, self.now), self._seq, what))

    def run(self, until: datetime) -> None:
        """The workflow's loop: plan, wait for the earliest of the planned action and the
        next event, act; until the loan closes or `until` comes."""
        c = self.c
        while True:
            if c.state.is_closed:
                self.apply(tasks.cancel_pending(c, self.now,
                                                f"loan closed as {c.state.outcome}"))
                if self.plan is not None:  # `Children.wind_down`
                    self.plan.cancel()
                return
            action = plan(c, self.now)
            assert action is not None  # write-off is always planned while open
            if action.due_at <= self.now:
                self._execute(action)
                continue
            if self._heap and self._heap[0].at <= action.due_at:
                if self._heap[0].at > until:
                    return
                event = heapq.heappop(self._heap)
                self.now = event.at
                event.what()
                continue
            if action.due_at > until:
                return
            self.now = action.due_at

    # ------------------------------------------------------------ like the workflow
    def apply(self, entries: list[LedgerEntry], write: bool = True) -> None:
        """`LoanCollectionWorkflow._apply`: start a legal case the loan entered, record the
        entries, follow a freeze."""
        c = self.c
        for entry in entries:
            if isinstance(entry, StageChanged) and entry.to_stage == "LEGAL":
                n = len(c.state.legal.cases) + 1
                litigation.open_case(c, f"legal-{c.loan.loan_id}-{c.state.case_id[:8]}-{n}",
                                     self.now)
                litigation.demand_requested(c)  # the case's first word: send the demand
        if write:
            for entry in entries:
                self.rows.entry(entry)
        self._follow_freeze()

    def _hand_over(self, opening: list[LedgerEntry], rules: RulesSnapshot) -> None:
        """`HandOver._hand_over` and the `open_loan` activity: the first stage and the first
        score recorded, then the rules adopted and the segment set."""
        c, now = self.c, self.now
        segment = c.state.segment
        facts, number = c.begin_scoring(now), c.reserve_event_number()
        result = self.scorer(facts)
        for entry in opening + scoring_entries(number, segment, now, result, ""):
            self.rows.entry(entry)
        c.adopt_rules(rules)
        self.apply(c.scored(now, result, "", number), write=False)

    def _execute(self, action: PlannedAction) -> None:
        ACTIONS[action.kind](self, action)

    def _write_off(self, action: PlannedAction) -> None:
        self.apply(self.c.write_off(self.now))

    def _resume(self, action: PlannedAction) -> None:
        self.apply(self.c.sync_pause(self.now))

    def _check_settlement(self, action: PlannedAction) -> None:
        self.apply(deals.check_settlement(self.c, self.now))

    def _check_promise(self, action: PlannedAction) -> None:
        self.apply(self.c.check_promise(self.now))

    def _end_reminder(self, action: PlannedAction) -> None:
        self.apply(self.c.end_reminder(self.now))

    def _end_negotiation(self, action: PlannedAction) -> None:
        self.apply(self.c.end_negotiation(self.now))

    def _task_sla(self, action: PlannedAction) -> None:
        task = tasks.next_escalation(self.c)
        if task is not None:
            self.apply(tasks.escalate(self.c, task, self.now))

    def _score(self, action: PlannedAction) -> None:
        c = self.c
        self.apply(c.scored(self.now, self.scorer(c.begin_scoring(self.now))))

    def _contact_step(self, action: PlannedAction) -> None:
        assert action.step is not None
        c, now = self.c, self.now
        if action.superseded:
            self.apply(c.skip_stale_steps(action.superseded, now))
        if action.step.as_task:
            self._open_contact_task(action.step)
            return
        status, detail = self._contact(action.step, action.purpose)
        if status not in ("deferred", "expired"):
            status = "skipped" if status == "stopped" else status
            self.apply(c.record_step(action.step.name, status, self.now, detail))

    def _plan_reminder(self, action: PlannedAction) -> None:
        """`PlannedActions._plan_reminder`: remind of an instalment still in the plan."""
        assert action.step is not None and action.instalment is not None
        plan, number = self.c.state.agreements.active_plan, action.instalment
        status = "skipped"
        if plan is not None and 1 <= number <= len(plan.instalments):
            status, _detail = self._contact(action.step, Purpose.COLLECTION)
        if status not in ("deferred", "expired"):
            self.c.plan_reminder_done(number)

    def start_plan(self, agreed: RepaymentPlan) -> None:
        """`Children.sync` starting the plan's child (frozen if collection is)."""
        self.plan = PlanRun(self, agreed, frozen=self.c.state.paused_since is not None)

    def _required_notice(self, action: PlannedAction) -> None:
        assert action.step is not None
        c, step = self.c, action.step
        status, detail = self._contact(step, action.purpose)
        if status in ("deferred", "expired", "stopped"):
            return
        if status == "sent":
            self.apply(c.record_step(step.name, "sent", self.now, detail))
            return
        if c.state.is_closed:
            return
        _task, entries = notices.notice_not_sent(c, step, detail, self.now)
        self.apply(entries)

    def _send_demand(self, action: PlannedAction) -> None:
        assert action.step is not None
        c, step = self.c, action.step
        status, detail = self._contact(step, Purpose.DEMAND)
        if status in ("deferred", "expired", "stopped"):
            return
        sent = status == "sent"
        self.apply(c.record_step(step.name, status, self.now, detail))
        self.apply(c.demand_sent(self.now, sent, detail))
        if c.state.legal.case is not None:
            self._demand_result(sent)

    def _open_contact_task(self, step: ContactStep) -> None:
        task = open_contact_task(self.c, step, self.now, self.apply)
        if task is not None:
            self.on_task(task)

    def _contact(self, step: ContactStep, purpose: Purpose) -> tuple[str, str]:
        """`ContactPath._contact` with a channel that accepts at once."""
        c, now = self.c, self.now
        options = channel_options(c, step, purpose, now)
        notes: list[str] = []
        for option in options.items:
            if isinstance(option, str):
                notes.append(option)
                continue
            channel, address = option.channel, option.address
            decision = c.decide_contact(channel, address, now, purpose)
            entries = c.record_decision(step.name, channel, address, decision, purpose)
            allowed = decision.verdict is Verdict.ALLOWED
            self.apply(entries, write=not allowed)
            if decision.verdict is Verdict.DEFERRED:
                return "deferred", decision.detail
            if decision.verdict is Verdict.BLOCKED:
                notes.append(f"{channel} blocked ({decision.code}: {decision.detail})")
                if falls_back(decision):
                    continue
                return "blocked", "; ".join(notes)
            decided = entries[0]
            assert isinstance(decided, ComplianceDecided)
            self.rows.entry(decided)  # the send records its decision with its claim
            self._messages += 1
            message_id = f"sim-{c.state.case_id[:8]}-{self._messages}"
            self.rows.contact(
                f"{c.state.case_id}:contact:{c.state.visit.visit}:{step.name}",
                f"{c.state.case_id}:{decided.key}", c.state.stage, step.name, channel,
                option.template, address, purpose, now,
                decision.valid_until or now + DECISION_VALIDITY, message_id)
            c.contact_made(channel, address, now, purpose)
            detail = f"{channel} message {message_id}"
            self.on_sent(Sent(channel=channel, at=now, purpose=purpose))
            return "sent", "; ".join([*notes, detail]) if notes else detail
        if options.time_barred_only:
            return "skipped", f"{TIME_BARRED} ({c.pack.ref('time_barred')})"
        return "blocked", "; ".join(notes) or "no channel available"

    # ------------------------------------------------------------ the legal case child
    def _follow_freeze(self) -> None:
        """`Children.follow_freeze`: the legal case's timer stops while collection is
        frozen and goes on with the time it had left."""
        frozen = self.c.state.paused_since is not None
        if frozen == self._frozen:
            return
        self._frozen = frozen
        if frozen and self._legal_due is not None:
            self._legal_left, self._legal_due = self._legal_due - self.now, None
            self._legal_token += 1  # the running timer no longer fires
        elif not frozen and self._legal_left is not None and self._legal_next is not None:
            self._legal_timer(self._legal_left, self._legal_next)
        if self.plan is not None and self.c.state.agreements.active_plan is not None:
            self.plan.freeze(frozen)

    def _legal_timer(self, duration: timedelta, then: Handler) -> None:
        self._legal_next, self._legal_token = then, self._legal_token + 1
        if self._frozen:
            self._legal_due, self._legal_left = None, duration
            return
        self._legal_due, self._legal_left = self.now + duration, None
        token = self._legal_token
        self.at(self._legal_due, lambda: self._legal_fired(token))

    def _legal_fired(self, token: int) -> None:
        if token != self._legal_token or self.c.state.is_closed:
            return
        then, self._legal_due, self._legal_next = self._legal_next, None, None
        if then is not None:
            then()

    def _demand_result(self, delivered: bool) -> None:
        """`LegalCaseWorkflow`: a delivered demand starts the cure period; then approval
        is asked for, and escalated at every approval timeout until a supervisor decides
        (`on_approval` tells the simulated supervisor)."""
        if delivered:
            self._legal_timer(self.c.cure_period, self._approval_requested)
        else:
            self._approval_requested()

    def _approval_requested(self) -> None:
        c, now = self.c, self.now
        why = ("cure period ended unpaid" if c.state.legal.phase is LegalPhase.CURE_PERIOD
               else "demand letter could not be delivered")
        entries = c.cure_expired(now, why)
        entries += tasks.open_task(c, TaskKind.APPROVE_LEGAL, litigation.LEGAL_REFERRAL, now,
                                   assignee=c.policy.tasks.supervisor_queue)[1]
        self.apply(entries)
        self._legal_timer(c.policy.legal.approval_timeout, self._approval_overdue)
        self.on_approval()

    def _approval_overdue(self) -> None:
        self.apply(self.c.approval_overdue(self.now))
        self._legal_timer(self.c.policy.legal.approval_timeout, self._approval_overdue)

    def legal_decided(self, case: LegalCase, approved: bool) -> None:
        """The case child's `decision` signal: the approval timer stops; an approved case
        is referred - once collection is no longer frozen, as the child waits."""
        self._legal_token += 1
        self._legal_due = self._legal_left = self._legal_next = None
        if not approved:
            return  # the child closes as rejected without a report
        if self._frozen:
            self._legal_left, self._legal_next = timedelta(0), lambda: self._refer(case)
            return
        self._refer(case)

    def _refer(self, case: LegalCase) -> None:
        """`LegalCaseWorkflow._refer` with a partner that takes the case at once, and the
        loan's `referred` report of it."""
        c, now = self.c, self.now
        case.referral = Referral(partner=c.policy.legal.partner,
                                 reference=f"sim-{case.case_ref}-{c.loan.loan_id}",
                                 referred_at=now)
        case.phase, case.phase_at = "REFERRED", now
        self.apply(litigation.referred(c, case, now))


ACTIONS: dict[ActionKind, Callable[[LoanRun, PlannedAction], Any]] = {
    ActionKind.WRITE_OFF: LoanRun._write_off,
    ActionKind.RESUME: LoanRun._resume,
    ActionKind.SCORE: LoanRun._score,
    ActionKind.TASK_SLA: LoanRun._task_sla,
    ActionKind.CHECK_SETTLEMENT: LoanRun._check_settlement,
    ActionKind.PLAN_REMINDER: LoanRun._plan_reminder,
    ActionKind.CHECK_PROMISE: LoanRun._check_promise,
    ActionKind.END_REMINDER: LoanRun._end_reminder,
    ActionKind.END_NEGOTIATION: LoanRun._end_negotiation,
    ActionKind.CONTACT: LoanRun._contact_step,
    ActionKind.VALIDATION_NOTICE: LoanRun._required_notice,
    ActionKind.FORBEARANCE_OFFER: LoanRun._required_notice,
    ActionKind.SEND_DEMAND: LoanRun._send_demand,
}

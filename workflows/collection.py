"""One durable workflow per overdue loan: reminder -> negotiation -> legal, until it closes.

The loop plans the next action with the pure planner, sets one timer to it, and re-plans
whenever a signal or update changes the state. Handlers only mutate state and queue
ledger entries; the loop writes them through an idempotent activity.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair
from temporalio.exceptions import ApplicationError, FailureError

from duecourse.workflows.contact_path import ContactPath, InFlight
from duecourse.workflows.supervision import Supervision

with workflow.unsafe.imports_passed_through():
    from duecourse import search_attributes as sa
    from duecourse.domain.agreements import deals
    from duecourse.domain.agreements.terms import (
        Assignment,
        AssignmentResult,
        PlanAccepted,
        PlanInput,
        PlanPayment,
        PlanProgress,
        PlanProposal,
        PlanStatus,
        RepaymentPlan,
        SettlementDecision,
        SettlementOffer,
        SettlementResult,
    )
    from duecourse.domain.calendar import local_midnight
    from duecourse.domain.case.aggregate import Collection
    from duecourse.domain.case.commands import (
        CancelRequest,
        ContactOutcomeReport,
        LegalDecision,
        LegalDecisionResult,
        PaymentReport,
        PromiseAccepted,
        PromiseRequest,
    )
    from duecourse.domain.case.state import LegalPhase
    from duecourse.domain.case.status import CollectionStatus, current_details, describe
    from duecourse.domain.compliance import Decision, Purpose, Verdict
    from duecourse.domain.compliance.requests import (
        ContactRequest,
        DisputeChange,
        HoldRequest,
        LifeEvent,
        PreferenceChange,
    )
    from duecourse.domain.contact import notices, protections
    from duecourse.domain.contact.outcomes import ContactCheck, ReportCheck
    from duecourse.domain.contact.recipients import recipient_for
    from duecourse.domain.entries import (
        ContactLogged,
        LedgerEntry,
        PaymentRecorded,
        StageChanged,
    )
    from duecourse.domain.events import (
        DeliveryReport,
        OutboundEvent,
        delivery_workflow_id,
        events_for,
    )
    from duecourse.domain.legal import litigation
    from duecourse.domain.legal.case import (
        CaseEvent,
        DemandResult,
        LegalCase,
        LegalCaseInput,
        LegalProgress,
        ManualReferral,
    )
    from duecourse.domain.money import Money
    from duecourse.domain.planner import ActionKind, PlannedAction, plan
    from duecourse.domain.policy import Channel, ContactStep
    from duecourse.domain.rules import (
        OpenedCase,
        RulesBasis,
        RulesMigration,
        migration_problem,
    )
    from duecourse.domain.scoring import ScoreResult
    from duecourse.domain.work import completion, tasks
    from duecourse.domain.work.queue import TaskCompletion, TaskKind, TaskResult
    from duecourse.temporal.contracts import (
        OPEN_LOAN,
        RECORD_ENTRIES,
        SCORE_LOAN,
        SEND_CLEARANCE,
        CollectionInput,
        CollectionResult,
        OpenLoan,
        OpsAlert,
        RecordEntries,
        SendClearance,
        money_text,
    )
    from duecourse.temporal.failures import failure_text

LEGAL_REFERRAL = "legal-referral"  # subject of the supervisor's approval task
EVENTS_PATCH = "outbound-events"
"""Runs started before outbound events existed replay without them (and never send any)."""
LEGAL_CLOSE_ALERT_PATCH = "legal-close-alert"
"""Runs whose case closed as paid before this alert existed replay without it."""
PLAN_FREEZE_PATCH = "plan-freeze"
"""Runs that froze before plans heard of freezes replay without telling their plan."""
REPORTED_VIOLATION_PATCH = "reported-contact-violation"
"""Runs whose agents reported a rule-breaking contact before such reports were reviewed
replay without the review (its event, task and ops alert)."""

DELIVERY_WAIT = timedelta(hours=3)
"""How long a closing loan waits for its event deliveries (which give up after about two
hours of retries): longer only if one can no longer report, as after a reset."""

SCORE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=30), maximum_attempts=5)
"""A scorer that keeps failing leaves the segment as it was (and ops are told)."""


@workflow.defn(name="LoanCollection")
class LoanCollectionWorkflow(ContactPath, Supervision):
    @workflow.init
    def __init__(self, inp: CollectionInput) -> None:
        now = workflow.now()
        self._fresh = inp.state is None
        self._pending: list[LedgerEntry] = []
        if inp.state is None:
            # the first run's id survives resets and continue-as-new: keys stay the same
            self._c, self._pending = Collection.begin(
                inp.loan, inp.policy, now, case_id=workflow.info().first_execution_run_id)
        else:
            self._c = Collection(inp.loan, inp.policy, inp.state)
        self._events: list[OutboundEvent] = self._events_for(self._pending)
        self._version = 0
        self._upserted: dict[str, object] = {}
        self._plans_to_start: list[RepaymentPlan] = []
        self._plan_payments: list[tuple[str, PlanPayment]] = []
        self._cases_to_start: list[LegalCase] = []
        self._child_signals: list[tuple[str, str, object]] = []
        self._alerts: list[OpsAlert] = []
        self._child_frozen = self._c.state.paused_since is not None
        self._in_flight: InFlight | None = None
        self._deliveries_open: set[str] = set()
        self._watchers: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ run loop
    @workflow.run
    async def run(self, inp: CollectionInput) -> CollectionResult:
        c = self._c
        self._publish()
        if self._fresh:
            if c.dpd(workflow.now()) < 1:
                raise ApplicationError(
                    f"loan {c.loan.loan_id} is not overdue (due {c.loan.due_date} in "
                    f"{c.loan.borrower.timezone})", type="LoanNotOverdue", non_retryable=True)
            opened = await self._ledger_call(
                OPEN_LOAN, OpenLoan(case_id=c.state.case_id,
                                    workflow_id=workflow.info().workflow_id, loan=c.loan,
                                    policy=c.policy.label, opened_at=c.state.opened_at,
                                    compliance=c.compliance_record(),
                                    overrides=c.policy.compliance),
                "opening the case", result_type=OpenedCase,
                fatal=("LoanAlreadyClosed", "RulesUnavailable"))
            c.adopt_rules(opened.rules)  # from here on, whatever is installed later
        while True:
            await self._drain()
            if c.state.is_closed:
                await self._wind_down()
                break
            if self._continue_as_new_due(inp):
                await self._quiesce(deliveries=False)  # they go on alone, unwatched
                if self._continue_as_new_due(inp) and not self._queued():
                    workflow.continue_as_new(CollectionInput(
                        loan=c.loan, policy=c.policy, state=c.state,
                        history_limit=inp.history_limit))
                continue  # a plan or case started meanwhile: go on in this run
            now = workflow.now()
            action = plan(c, now)
            if action is None:  # pragma: no cover - write-off is always planned while open
                raise ApplicationError("nothing planned for an open loan", non_retryable=True)
            if action.due_at > now:
                seen = self._version
                workflow.set_current_details(current_details(c, now, action))
                try:
                    await workflow.wait_condition(lambda seen=seen: self._version != seen,
                                                  timeout=action.due_at - now,
                                                  timeout_summary=action.description)
                    continue  # something happened: re-plan from the new state
                except TimeoutError:
                    continue  # due now: the next pass plans it with the current time
            await self._execute(action)
        await self._quiesce()
        s = c.state
        assert s.outcome is not None and s.closed_at is not None
        workflow.set_current_details(current_details(c, s.closed_at, None))
        return CollectionResult(
            loan_id=c.loan.loan_id, outcome=s.outcome, reason=s.close_reason,
            outstanding=Money(amount=s.outstanding, currency=c.loan.currency),
            total_paid=Money(amount=s.total_paid, currency=c.loan.currency),
            closed_at=s.closed_at)

    def _queued(self) -> bool:
        return bool(self._pending or self._plans_to_start or self._plan_payments
                    or self._cases_to_start or self._child_signals or self._alerts
                    or self._events)

    async def _drain(self) -> None:
        """Start children, signal them, alert and write the ledger until nothing is
        queued (handlers may queue more while we await)."""
        while self._queued():
            await self._sync_children()
            await self._flush()

    async def _quiesce(self, deliveries: bool = True) -> None:
        """Before the run ends: every handler done and everything written - and, when the
        loan has closed, every event delivered or given up by its watched child (a run
        that continues as new does not hold collection up for them)."""
        def settled() -> bool:
            return workflow.all_handlers_finished() and not (
                deliveries and self._deliveries_open)

        while True:
            await self._drain()
            if settled():
                return
            waiting = deliveries and bool(self._deliveries_open)
            try:
                await workflow.wait_condition(
                    lambda: self._queued() or settled(),
                    timeout=DELIVERY_WAIT if waiting else None,
                    timeout_summary="deliveries to finish" if waiting else None)
            except TimeoutError:  # a delivery that can no longer report (e.g. a reset)
                workflow.logger.warning("stopped waiting for event deliveries", extra={
                    "loan_id": self._c.loan.loan_id, "deliveries": sorted(
                        self._deliveries_open)})
                self._deliveries_open.clear()

    def _continue_as_new_due(self, inp: CollectionInput) -> bool:
        """Start a fresh history when it grows long - but not while a plan or legal case
        child is running: they report to this workflow, and the parent's history grows
        only by those reports meanwhile."""
        info = workflow.info()
        if not (info.get_current_history_length() > inp.history_limit
                or info.is_continue_as_new_suggested()):
            return False
        s = self._c.state
        return s.active_plan is None and s.legal_case is None

    async def _execute(self, action: PlannedAction) -> None:
        c, now = self._c, workflow.now()
        kind = action.kind
        if kind is ActionKind.WRITE_OFF:
            self._apply(c.write_off(now))
        elif kind is ActionKind.RESUME:
            self._apply(c.sync_pause(now))
        elif kind is ActionKind.SCORE:
            await self._score()
        elif kind is ActionKind.TASK_SLA:
            task = tasks.next_escalation(c)
            if task is not None:
                self._apply(tasks.escalate(c, task, now))
                self._queue_alert(f"Task {task.task_id} ({task.kind.value}) missed its SLA",
                                  f"Reassigned to {task.assignee}.")
        elif kind is ActionKind.CHECK_SETTLEMENT:
            self._apply(deals.check_settlement(c, now))
        elif kind is ActionKind.PLAN_REMINDER:
            assert action.step is not None and action.instalment is not None
            context = self._instalment_context(action.instalment)
            status = "skipped"
            if context is not None:
                status = (await self._contact(action.step, Purpose.COLLECTION,
                                              extra=context)).status
            if status not in ("deferred", "expired") and \
                    c.state.plan_reminders[:1] == [action.instalment]:
                c.state.plan_reminders.pop(0)
        elif kind is ActionKind.CHECK_PROMISE:
            self._apply(c.check_promise(now))
        elif kind is ActionKind.END_REMINDER:
            self._apply(c.end_reminder(now))
        elif kind is ActionKind.END_NEGOTIATION:
            self._apply(c.end_negotiation(now))
        elif kind is ActionKind.CONTACT:
            assert action.step is not None
            self._skip_superseded(action.superseded, now)
            if action.step.as_task:
                self._open_contact_task(action.step, now)
                return
            outcome = await self._contact(action.step, action.purpose)
            if outcome.status not in ("deferred", "expired"):
                status = "skipped" if outcome.status == "stopped" else outcome.status
                self._apply(c.record_step(action.step.name, status, workflow.now(),
                                          outcome.detail))
        elif kind in (ActionKind.VALIDATION_NOTICE, ActionKind.FORBEARANCE_OFFER):
            assert action.step is not None
            await self._required_notice(action.step, action.purpose)
        elif kind is ActionKind.SEND_DEMAND:
            assert action.step is not None
            await self._send_demand(action.step)

    def _skip_superseded(self, steps: list[str], now: datetime) -> None:
        """Stale nudges the loan reached too late are skipped - counted, alerted, shown."""
        if not steps:
            return
        c = self._c
        for name in steps:
            self._apply(c.record_step(name, "skipped", now, "superseded by a later step"))
        c.state.late_skips += len(steps)
        self._queue_alert(f"{len(steps)} planned contact(s) skipped as stale",
                          f"Reached too late: {', '.join(steps)}; a later step goes instead.")

    async def _required_notice(self, step: ContactStep, purpose: Purpose) -> None:
        """A notice the law requires before going on; one that cannot be sent goes to a
        person (a send_notice task) instead of being retried until write-off."""
        c = self._c
        outcome = await self._contact(step, purpose)
        if outcome.status in ("deferred", "expired", "stopped"):
            return  # asked again when it may go (a freeze holds it back meanwhile)
        if outcome.status == "sent":
            self._apply(c.record_step(step.name, "sent", workflow.now(), outcome.detail))
            return
        if c.state.is_closed:
            return
        task, entries = notices.notice_not_sent(c, step, outcome.detail, workflow.now())
        self._apply(entries)
        self._queue_alert(f"{step.template} not sent: task {task.task_id} for a person",
                          outcome.detail)

    async def _send_demand(self, step: ContactStep) -> None:
        c = self._c
        outcome = await self._contact(step, Purpose.DEMAND)
        if outcome.status in ("deferred", "expired", "stopped"):
            return  # asked again when it may go (a freeze holds the demand back)
        now = workflow.now()
        sent = outcome.status == "sent"
        self._apply(c.record_step(step.name, outcome.status, now, outcome.detail))
        self._apply(c.demand_sent(now, sent, outcome.detail))
        case = c.state.legal_case
        if case is not None:
            self._to_child(case.workflow_id, "demand_result",
                           DemandResult(delivered=sent, detail=outcome.detail))
        if not sent:
            self._queue_alert("Demand letter not sent", outcome.detail)

    def _open_contact_task(self, step: ContactStep, now: datetime) -> None:
        """A call or visit for a person to make: the engine decides first whether it may
        happen at all now (a blocked one is recorded, a deferred one waits)."""
        c = self._c
        visit = step.channel is Channel.VISIT
        address = recipient_for(step.channel, c.loan.borrower)
        if address is None:
            self._apply(c.record_step(step.name, "blocked", now,
                                      f"no {step.channel} contact details"))
            return
        decision = c.decide_contact(step.channel, address, now,
                                    collectors=c.pack.min_visit_collectors or 1)
        self._apply(c.record_decision(step.name, step.channel, address, decision))
        if decision.verdict is Verdict.DEFERRED:
            return
        if decision.verdict is Verdict.BLOCKED:
            self._apply(c.record_step(step.name, "blocked", now,
                                      f"{decision.code}: {decision.detail}"))
            return
        kind = TaskKind.FIELD_VISIT if visit else TaskKind.CALL_BORROWER
        task, entries = tasks.open_task(c, kind, step.name, now, note=step.template)
        self._apply(entries)
        self._apply(c.record_step(step.name, "task", now, task.task_id))

    # ------------------------------------------------------------------ activities
    async def _flush(self) -> None:
        """Write queued ledger entries, then announce the events among them (after the
        write, so a receiver that reads the ledger finds the fact); handlers may queue more
        meanwhile."""
        while self._pending or self._events:
            while self._pending:
                batch = list(self._pending)
                await self._ledger_call(RECORD_ENTRIES, RecordEntries(
                    case_id=self._c.state.case_id, workflow_id=workflow.info().workflow_id,
                    loan_id=self._c.loan.loan_id, entries=batch), "recording ledger entries")
                del self._pending[:len(batch)]  # written: handlers may have added more
            events, self._events = self._events, []  # their entries are all written now
            if events and workflow.patched(EVENTS_PATCH):
                for event in events:
                    await self._start_child(
                        "event_delivery", "EventDelivery", event,
                        delivery_workflow_id(event.event_id),
                        f"{event.type} of loan {event.loan_id}", result_type=DeliveryReport)

    async def _score(self) -> None:
        """Ask the scorer for the loan's segment; a new segment changes the treatment. A
        scorer that fails keeps the segment as it was and tells ops."""
        c = self._c
        c.state.rescore = False
        try:
            result = await workflow.execute_activity(
                SCORE_LOAN, c.score_input(workflow.now()), result_type=ScoreResult,
                start_to_close_timeout=timedelta(seconds=30), retry_policy=SCORE_RETRY)
        except FailureError as err:
            why = failure_text(err)
            self._apply([c._event("scoring_failed", workflow.now(), detail=why,
                                  segment_kept=c.state.segment)])
            self._queue_alert("Scoring failed; the segment is kept", why)
            return
        if result.segment is not c.state.segment:
            previous, c.state.segment = c.state.segment, result.segment
            c.state.segment_reasons = result.reasons
            self._apply([c._event("segment_changed", workflow.now(), segment=result.segment,
                                  previous=previous, score=result.score,
                                  reasons=result.reasons)])

    def _instalment_context(self, number: int) -> dict[str, str] | None:
        """Template values for a reminder about instalment `number` of the running plan;
        None when there is no such instalment left to remind about."""
        plan = self._c.state.active_plan
        if plan is None or not 1 <= number <= len(plan.instalments):
            return None
        item = plan.instalments[number - 1]
        return {"instalment_number": str(number), "instalment_due": item.due_date.isoformat(),
                "instalment_amount": money_text(item.remaining, plan.currency)}

    async def _sync_children(self) -> None:
        """Start agreed plans and legal cases, forward payments and signals to them, and
        write queued alerts (handlers cannot await)."""
        c = self._c
        while self._plans_to_start:
            agreed = self._plans_to_start[0]
            rules = deals.plan_rules(c)
            await self._start_child("plan", "RepaymentPlan", PlanInput(
                plan=agreed, parent_workflow_id=workflow.info().workflow_id,
                timezone=c.loan.borrower.timezone,
                zone_rules=c.state.rules.zone_rules if c.state.rules else None,
                grace_days=rules.grace_days,
                tolerated_late=rules.tolerated_late,
                reminder_days_before=rules.reminder_days_before,
                frozen=self._child_frozen, unpaid_at_end=rules.unpaid_at_end),
                agreed.workflow_id, f"Plan {agreed.plan_id} of loan {c.loan.loan_id}")
            self._plans_to_start.pop(0)
        while self._plan_payments:
            child, payment = self._plan_payments.pop(0)
            await self._signal(child, "payment", payment)
        while self._cases_to_start:
            case = self._cases_to_start[0]
            await self._start_child("legal_case", "LegalCase", LegalCaseInput(
                case=case, parent_workflow_id=workflow.info().workflow_id,
                collection_case_id=c.state.case_id, loan_id=c.loan.loan_id,
                cure_period=c.cure_period, approval_timeout=c.policy.legal.approval_timeout,
                partner=c.policy.legal.partner),
                case.workflow_id, f"Legal case {case.case_ref} of loan {c.loan.loan_id}")
            self._cases_to_start.pop(0)
        while self._child_signals:
            child, name, arg = self._child_signals.pop(0)
            await self._signal(child, name, arg)
        await self._send_alerts()

    async def _wind_down(self) -> None:
        """On closing: cancel open tasks and stop a running plan."""
        c, now = self._c, workflow.now()
        self._apply(tasks.cancel_pending(c, now, f"loan closed as {c.state.outcome}"))
        for plan in c.state.plans:  # their children may still run: stop them
            if plan.status in (PlanStatus.CANCELLED, PlanStatus.ACTIVE):
                await self._signal(plan.workflow_id, "cancel")
        case = c.state.legal_case
        if case is not None:
            await self._signal(case.workflow_id, "close", f"loan closed as {c.state.outcome}")
        await self._drain()

    async def _signal(self, child: str, name: str, arg: object = None) -> None:
        """Signal a child; one that has already finished is logged, not fatal."""
        handle = workflow.get_external_workflow_handle(child)
        try:
            if arg is None:
                await handle.signal(name)
            else:
                await handle.signal(name, arg)
        except FailureError as err:
            workflow.logger.warning("child not signalled", extra={
                "child": child, "signal": name, "error": str(err)})

    def _forward_decision(self, case: LegalCase | None, decision: LegalDecision) -> None:
        if case is None:
            return
        if not decision.approve:
            case.outcome = "rejected"  # the child ends on it; nothing more goes to it
        self._to_child(case.workflow_id, "decision", decision)

    def _to_child(self, workflow_id: str, signal: str, arg: object) -> None:
        self._child_signals.append((workflow_id, signal, arg))
        self._version += 1

    # ------------------------------------------------------------------ helpers
    def _apply(self, entries: list[LedgerEntry]) -> None:
        for entry in entries:
            if isinstance(entry, StageChanged):
                workflow.logger.info("stage changed", extra={
                    "loan_id": self._c.loan.loan_id, "from_stage": entry.from_stage,
                    "stage": entry.to_stage, "outcome": entry.outcome,
                    "reason": entry.reason})
        self._pending.extend(entries)
        self._events.extend(self._events_for(entries))
        self._version += 1
        c = self._c
        if any(isinstance(e, StageChanged) and e.to_stage == "LEGAL" for e in entries):
            n = len(c.state.legal_cases) + 1
            self._cases_to_start.append(litigation.open_case(
                c, f"legal-{c.loan.loan_id}-{c.state.case_id[:8]}-{n}", workflow.now()))
        frozen = c.state.paused_since is not None
        if frozen != self._child_frozen:
            self._child_frozen = frozen
            if (case := c.state.legal_case) is not None:
                self._child_signals.append((case.workflow_id, "freeze", frozen))
            plan = c.state.active_plan
            if plan is not None and plan not in self._plans_to_start and \
                    workflow.patched(PLAN_FREEZE_PATCH):
                self._child_signals.append((plan.workflow_id, "freeze", frozen))
        self._fence_in_flight()
        self._publish()  # in the same workflow task as the change, even from a handler

    def _events_for(self, entries: list[LedgerEntry]) -> list[OutboundEvent]:
        c = self._c
        return events_for(entries, c.state.case_id, c.loan.loan_id,
                          workflow.info().workflow_id, c.state.outstanding, c.loan.currency)

    def _outstanding_text(self) -> str:
        return money_text(self._c.state.outstanding, self._c.loan.currency)

    def _publish(self) -> None:
        """Upsert the search attributes whose values changed since the last upsert."""
        c, s = self._c, self._c.state
        values: list[SearchAttributePair] = [
            SearchAttributePair(sa.COLLECTION_STAGE, s.stage.value),
            SearchAttributePair(sa.DAYS_PAST_DUE, c.dpd(s.closed_at or workflow.now())),
            SearchAttributePair(sa.OUTSTANDING_AMOUNT, float(s.outstanding)),
            SearchAttributePair(sa.JURISDICTION, c.loan.jurisdiction),
            SearchAttributePair(sa.DUE_DATE, local_midnight(c.loan.due_date, c.tz)),
            SearchAttributePair(sa.NEEDS_ATTENTION, bool(s.attention)),
        ]
        if s.outcome is not None:
            values.append(SearchAttributePair(sa.COLLECTION_OUTCOME, s.outcome.value))
        if s.segment is not None:
            values.append(SearchAttributePair(sa.SEGMENT, s.segment.value))
        if s.assigned_agent is not None:
            values.append(SearchAttributePair(sa.ASSIGNED_AGENT, s.assigned_agent))
        changed = [p.key.value_set(p.value) for p in values
                   if self._upserted.get(p.key.name) != p.value]
        if changed:
            workflow.upsert_search_attributes(changed)
            self._upserted.update({p.key.name: p.value for p in values})

    # ------------------------------------------------------------------ signals
    @workflow.signal
    def report_payment(self, report: PaymentReport) -> None:
        c, now = self._c, workflow.now()
        plan = c.state.active_plan
        entries = c.apply_payment(report, now)
        applied = sum((e.applied for e in entries if isinstance(e, PaymentRecorded)),
                      start=Money.zero(c.loan.currency).amount)
        if plan is not None and applied > 0:
            self._plan_payments.append((plan.workflow_id, PlanPayment(
                reference=report.reference, amount=applied)))
        self._apply(entries + deals.settle_if_paid(c, now, report.actor))

    @workflow.signal
    def legal_progress(self, progress: LegalProgress) -> None:
        """Reported by the LegalCase child as the case moves."""
        c, now = self._c, workflow.now()
        litigation.mirror(c, progress.case)
        if progress.event == "send_demand":
            c.state.legal_demand_requested = True
            self._apply([])
        elif progress.event == "approval_requested":
            why = ("cure period ended unpaid" if c.state.legal_phase is LegalPhase.CURE_PERIOD
                   else "demand letter could not be delivered")
            entries = c.cure_expired(now, why)
            entries += tasks.open_task(c, TaskKind.APPROVE_LEGAL, LEGAL_REFERRAL, now,
                                       assignee=c.policy.tasks.supervisor_queue)[1]
            self._queue_alert("Legal referral awaiting supervisor approval",
                              f"{why}; {self._outstanding_text()} unpaid.")
            self._apply(entries)
        elif progress.event == "approval_overdue":
            entries = c.approval_overdue(now)
            self._queue_alert(
                f"Legal approval overdue (escalation {c.state.approval_escalations})",
                f"No supervisor decision since {c.state.legal_phase_at}; "
                f"{self._outstanding_text()} unpaid.")
            self._apply(entries)
        elif progress.event == "referred":
            referral = progress.case.referral
            self._apply([c._event("legal_referred", now, case=progress.case.case_ref,
                                  partner=referral.partner if referral else "",
                                  reference=referral.reference if referral else "")])
        elif progress.event == "referral_failed":
            task, entries = tasks.open_task(
                c, TaskKind.REFER_CASE, progress.case.case_ref, now,
                assignee=c.policy.tasks.supervisor_queue, note=progress.detail)
            self._queue_alert(f"Legal referral of {progress.case.case_ref} failed: task "
                              f"{task.task_id}", progress.detail)
            self._apply([*entries, c._event("legal_referral_failed", now,
                                            case=progress.case.case_ref,
                                            detail=progress.detail, task=task.task_id)])
        elif progress.event == "closed":
            self._apply(litigation.case_closed(c, progress.case, now))
            outcome = progress.case.outcome
            if outcome in ("paid", "settled") and not c.state.is_closed and \
                    workflow.patched(LEGAL_CLOSE_ALERT_PATCH):
                # the money itself arrives as payments; until then someone must look
                self._queue_alert(
                    f"Legal case {progress.case.case_ref} closed as {outcome}",
                    f"{self._outstanding_text()} still outstanding: report the payments "
                    "received through the legal partner so the loan can close.")
                self._version += 1

    @workflow.update
    def record_case_event(self, event: CaseEvent) -> LegalCase:
        """The legal team reports what happened in court; forwarded to the case."""
        c = self._c
        try:
            entries = litigation.record_case_event(c, event, workflow.now())
        except ValueError as err:
            raise ApplicationError(str(err), type="CaseEventRejected") from None
        case = c.state.legal_case
        assert case is not None
        self._to_child(case.workflow_id, "case_event", event)
        self._apply(entries)
        return case

    @record_case_event.validator
    def _validate_case_event(self, event: CaseEvent) -> None:
        if problem := litigation.case_event_problem(self._c, event):
            raise ApplicationError(problem, type="CaseEventRejected")

    @workflow.signal
    def plan_progress(self, progress: PlanProgress) -> None:
        """Reported by the RepaymentPlanWorkflow child on every change."""
        c = self._c
        self._apply(deals.plan_progress(c, progress, workflow.now()))

    @workflow.signal
    def record_contact_outcome(self, report: ContactOutcomeReport) -> None:
        """Record what came of a contact. One the agent made without asking first is
        judged before it joins the history (as the audit judges it); if it broke rules,
        the ledger says so, a supervisor gets a review task and ops an alert - the contact
        is recorded all the same (it happened, and the limits count it). The agent heard
        of it already: the client asked `contact_check` before signalling."""
        c, now = self._c, workflow.now()
        # runs from before the review never judged reports: their replays must not either
        check = c.contact_check(report, now) if workflow.patched(REPORTED_VIOLATION_PATCH) \
            else None
        entries = c.record_contact_outcome(report, now)
        if check is not None and check.broke_rules:
            task, reviewed = tasks.review_reported_violation(c, report, check, now)
            entries += reviewed
            self._queue_alert(
                f"Reported contact broke {len(check.violations)} rule(s): "
                f"{', '.join(v.code for v in check.violations)}",
                f"{check.summary(report)}. " + (f"Review task {task.task_id}." if task
                                                else "The loan is closing: no task."))
        self._apply(entries)

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        self._apply(self._c.cancel(request, workflow.now()))

    @workflow.signal
    def update_contact_preferences(self, change: PreferenceChange) -> None:
        self._apply(protections.change_preferences(self._c, change, workflow.now()))

    @workflow.signal
    def dispute(self, change: DisputeChange) -> None:
        self._apply(protections.change_dispute(self._c, change, workflow.now()))

    @workflow.signal
    def life_event(self, event: LifeEvent) -> None:
        self._apply(protections.life_event(self._c, event, workflow.now()))

    # ------------------------------------------------------------------ updates
    @workflow.update
    def hold(self, request: HoldRequest) -> CollectionStatus:
        try:
            self._apply(protections.change_hold(self._c, request, workflow.now()))
        except ValueError as err:
            raise ApplicationError(str(err), type="HoldRejected") from None
        return self.status()

    @hold.validator
    def _validate_hold(self, request: HoldRequest) -> None:
        if problem := protections.hold_problem(self._c, request, workflow.now()):
            raise ApplicationError(problem, type="HoldRejected")

    @workflow.update
    def request_contact(self, request: ContactRequest) -> Decision:
        """An agent asks before calling or visiting; an allowed contact is logged and
        counts towards the limits."""
        c, now = self._c, workflow.now()
        address = request.address or recipient_for(request.channel, c.loan.borrower)
        if address is None:
            raise ApplicationError(f"no {request.channel} contact details on file",
                                   type="ContactRejected")
        person = request.person or ""
        decision = c.decide_contact(request.channel, address, now, request.purpose,
                                    request.recipient_kind, request.collectors,
                                    request.discloses_debt, person, request.at_workplace)
        step = "agent-contact"  # who asked is in the actor columns
        entries = c.record_decision(step, request.channel, address, decision,
                                    request.purpose, request.recipient_kind, request.actor)
        if decision.allowed:
            c.contact_made(request.channel, address, now, request.purpose,
                           request.recipient_kind, person)
            entries.append(ContactLogged(
                key=f"contact-by-person:{entries[0].key}", occurred_at=now,
                actor=request.actor, stage=c.state.stage, step=step,
                channel=request.channel, recipient=address,
                recipient_kind=request.recipient_kind, purpose=request.purpose,
                person=person, at_workplace=request.at_workplace))
        self._apply(entries)
        return decision

    @request_contact.validator
    def _validate_contact_request(self, request: ContactRequest) -> None:
        c = self._c
        if c.state.is_closed:
            raise ApplicationError(f"the loan is closed ({c.state.outcome})",
                                   type="ContactRejected")
        if request.address is None and recipient_for(request.channel, c.loan.borrower) is None:
            raise ApplicationError(f"no {request.channel} contact details on file",
                                   type="ContactRejected")

    @workflow.update
    def propose_plan(self, proposal: PlanProposal) -> PlanAccepted:
        c = self._c
        workflow_id = f"plan-{c.loan.loan_id}-{c.state.case_id[:8]}-{len(c.state.plans) + 1}"
        try:
            plan, entries = deals.accept_plan(c, proposal, workflow.now(), workflow_id)
        except ValueError as err:
            raise ApplicationError(str(err), type="PlanRejected") from None
        self._plans_to_start.append(plan)
        self._apply(entries)
        return PlanAccepted(plan_id=plan.plan_id, workflow_id=plan.workflow_id,
                            instalments=plan.instalments,
                            total=Money(amount=plan.total, currency=plan.currency))

    @propose_plan.validator
    def _validate_plan(self, proposal: PlanProposal) -> None:
        if problem := deals.plan_problem(self._c, proposal, workflow.now()):
            raise ApplicationError(problem, type="PlanRejected")

    @workflow.update
    def offer_settlement(self, offer: SettlementOffer) -> SettlementResult:
        c = self._c
        try:
            settlement, entries = deals.offer_settlement(c, offer, workflow.now())
        except ValueError as err:
            raise ApplicationError(str(err), type="SettlementRejected") from None
        self._apply(entries)
        return self._settlement_result(settlement.settlement_id)

    @offer_settlement.validator
    def _validate_settlement(self, offer: SettlementOffer) -> None:
        if problem := deals.settlement_problem(self._c, offer, workflow.now()):
            raise ApplicationError(problem, type="SettlementRejected")

    @workflow.update
    def decide_settlement(self, decision: SettlementDecision) -> SettlementResult:
        c = self._c
        pending = c.state.open_settlement
        try:
            self._apply(deals.decide_settlement(c, decision, workflow.now()))
        except ValueError as err:
            raise ApplicationError(str(err), type="SettlementRejected") from None
        assert pending is not None
        return self._settlement_result(pending.settlement_id)

    @decide_settlement.validator
    def _validate_settlement_decision(self, decision: SettlementDecision) -> None:
        if problem := deals.settlement_decision_problem(self._c, decision, workflow.now()):
            raise ApplicationError(problem, type="SettlementRejected")

    def _settlement_result(self, settlement_id: str) -> SettlementResult:
        st = next(x for x in self._c.state.settlements if x.settlement_id == settlement_id)
        return SettlementResult(settlement_id=st.settlement_id, status=st.status,
                                amount=Money(amount=st.amount, currency=st.currency),
                                discount=st.discount,
                                needs_approval=st.status.value == "PENDING_APPROVAL",
                                task_id=st.task_id)

    @workflow.update
    def assign_agent(self, assignment: Assignment) -> AssignmentResult:
        try:
            previous, entries = deals.assign(self._c, assignment, workflow.now())
        except ValueError as err:
            raise ApplicationError(str(err), type="AssignmentRejected") from None
        self._apply(entries)
        return AssignmentResult(assigned_agent=assignment.agent_id, previous=previous)

    @assign_agent.validator
    def _validate_assignment(self, assignment: Assignment) -> None:
        if problem := deals.assignment_problem(self._c, assignment):
            raise ApplicationError(problem, type="AssignmentRejected")

    @workflow.update
    def complete_task(self, done: TaskCompletion) -> TaskResult:
        c = self._c
        case = c.state.legal_case
        try:
            entries = completion.complete_task(c, done, workflow.now())
        except ValueError as err:
            raise ApplicationError(str(err), type="TaskRejected") from None
        self._apply(entries)
        task = tasks.find(c, done.task_id)
        assert task is not None
        if task.kind is TaskKind.APPROVE_LEGAL:
            self._forward_decision(case, LegalDecision(
                approve=done.outcome == "approved", actor=done.actor,
                reason=done.note or done.outcome))
        elif task.kind is TaskKind.REFER_CASE and case is not None:
            self._to_child(case.workflow_id, "manual_referral", ManualReferral(
                retry=done.outcome == "retry", reference=done.note))
        return TaskResult(task_id=task.task_id, kind=task.kind, outcome=task.outcome,
                          stage=c.state.stage)

    @complete_task.validator
    def _validate_task(self, done: TaskCompletion) -> None:
        if problem := completion.task_problem(self._c, done, workflow.now()):
            raise ApplicationError(problem, type="TaskRejected")

    @workflow.update
    def promise_to_pay(self, request: PromiseRequest) -> PromiseAccepted:
        try:
            promise, entries = self._c.make_promise(request, workflow.now())
        except ValueError as err:  # state moved on since validation: refuse, don't fail
            raise ApplicationError(str(err), type="PromiseRejected") from None
        self._apply(entries)
        return PromiseAccepted(promise_id=promise.promise_id,
                               amount=Money(amount=promise.amount, currency=promise.currency),
                               due_date=promise.due_date, check_at=promise.check_at)

    @promise_to_pay.validator
    def _validate_promise(self, request: PromiseRequest) -> None:
        if problem := self._c.promise_problem(request, workflow.now()):
            raise ApplicationError(problem, type="PromiseRejected")

    @workflow.update
    def decide_legal_referral(self, decision: LegalDecision) -> LegalDecisionResult:
        c, now = self._c, workflow.now()
        case = c.state.legal_case
        try:
            self._apply(c.decide_legal(decision, now))
            self._forward_decision(case, decision)
            self._apply(tasks.resolve_subject(c, TaskKind.APPROVE_LEGAL, LEGAL_REFERRAL,
                                              "approved" if decision.approve else "rejected",
                                              decision.actor, now))
        except ValueError as err:
            raise ApplicationError(str(err), type="LegalDecisionRejected") from None
        s = self._c.state
        return LegalDecisionResult(approved=decision.approve, stage=s.stage,
                                   legal_phase=s.legal_phase)

    @decide_legal_referral.validator
    def _validate_legal_decision(self, decision: LegalDecision) -> None:
        if problem := self._c.legal_decision_problem(decision):
            raise ApplicationError(problem, type="LegalDecisionRejected")

    @workflow.update
    def migrate_rules(self, migration: RulesMigration) -> CollectionStatus:
        """Move the loan to newer rules (a new pack version, corrected holidays), with who
        and why in the ledger: the only way a changed pack reaches a running loan."""
        c, now = self._c, workflow.now()
        before = c.state.rules
        try:
            c.adopt_rules(migration.rules)
        except ValueError as err:  # the validator parsed it already: never fail the task
            raise ApplicationError(str(err), type="MigrationRejected") from None
        self._apply([c._event(
            "rules_migrated", now, migration.actor, reason=migration.reason,
            previous=before.pack.title if before else None, pack=migration.rules.pack.title,
            rules=migration.rules.model_dump(mode="json"))])
        return self.status(now)

    @migrate_rules.validator
    def _validate_migration(self, migration: RulesMigration) -> None:
        c = self._c
        if c.state.is_closed:
            raise ApplicationError(f"the loan is closed ({c.state.outcome})",
                                   type="MigrationRejected")
        if problem := migration_problem(c.loan.jurisdiction, c.loan.borrower.timezone,
                                        migration):
            raise ApplicationError(problem, type="MigrationRejected")

    # ------------------------------------------------------------------ queries
    @workflow.query
    def rules(self) -> RulesBasis:
        """What a new rules snapshot for this loan is taken from, and the current one."""
        c = self._c
        return RulesBasis(jurisdiction=c.loan.jurisdiction, zone=c.loan.borrower.timezone,
                          overrides=c.policy.compliance, current=c.state.rules)

    @workflow.query
    def status(self, as_of: datetime | None = None) -> CollectionStatus:
        """The loan as of `as_of` (the caller's now): `workflow.now()` in a query is the
        time of the last workflow task, which may be long past."""
        now = max(as_of, workflow.now()) if as_of is not None else workflow.now()
        return describe(self._c, now, plan(self._c, now))

    @workflow.query
    def contact_check(self, check: ContactCheck) -> ReportCheck:
        """The rules a contact outcome about to be reported would be recorded as breaking:
        a signal cannot answer, so the client asks this first and tells the agent at once.
        Judged by the same domain function the signal records it with, at the caller's now
        (`workflow.now()` in a query is the last workflow task's time)."""
        return self._c.contact_check(check.report, max(check.at, workflow.now()))

    @workflow.query(name=SEND_CLEARANCE)
    def send_clearance(self, ask: SendClearance) -> str:
        """Asked by the send in flight just before it calls the channel: '' to go ahead,
        else the stop fact that arrived since it was decided."""
        return self._clearance(ask.idempotency_key, ask.channel, ask.recipient,
                               Purpose(ask.purpose), ask.at)


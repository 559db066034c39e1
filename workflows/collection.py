"""One durable workflow per overdue loan: reminder -> negotiation -> legal, until it closes.

The loop plans the next action with the pure planner, keeps one timer for it, and
re-plans whenever a signal or update changes the state. Handlers only mutate state
(through the domain) and queue ledger entries; the loop writes them through an
idempotent activity. Outbound events are the ledger's business (an outbox written with
the entries), not the workflow's.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from duecourse.workflows.actions import PlannedActions
from duecourse.workflows.children import CaseChild, Children, PlanChild, Signal
from duecourse.workflows.contact_path import InFlight
from duecourse.workflows.due_timer import DueTimer
from duecourse.workflows.hand_over import HandOver
from duecourse.workflows.legal_progress import LEGAL_PROGRESS, LegalProgressReports
from duecourse.workflows.refusal import refuse, refusing
from duecourse.workflows.visibility import Visibility

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.agreements import deals
    from duecourse.domain.agreements.terms import (
        Assignment,
        AssignmentResult,
        PlanAccepted,
        PlanPayment,
        PlanProgress,
        PlanProposal,
        SettlementDecision,
        SettlementOffer,
        SettlementResult,
    )
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
    from duecourse.domain.case.status import CollectionStatus, current_details, describe
    from duecourse.domain.case.supervision import ChildKind, child_failed
    from duecourse.domain.compliance import Decision, Purpose
    from duecourse.domain.compliance.requests import (
        ContactRequest,
        DisputeChange,
        HoldRequest,
        LifeEvent,
        PreferenceChange,
    )
    from duecourse.domain.contact import protections
    from duecourse.domain.contact.outcomes import ContactCheck, ReportCheck
    from duecourse.domain.contact.recipients import recipient_for
    from duecourse.domain.entries import LedgerEntry, PaymentRecorded, StageChanged
    from duecourse.domain.legal import litigation
    from duecourse.domain.legal.case import CaseEvent, LegalCase, LegalProgress, ManualReferral
    from duecourse.domain.money import Money
    from duecourse.domain.planner import plan
    from duecourse.domain.rules import RulesBasis, RulesMigration, migration_problem
    from duecourse.domain.work import completion, tasks
    from duecourse.domain.work.breathing import (
        BreathingSpaceAsk,
        ask_for_breathing_space,
        ask_problem,
    )
    from duecourse.domain.work.callbacks import CallbackRequest, book_callback, callback_problem
    from duecourse.domain.work.queue import Task, TaskCompletion, TaskKind, TaskResult
    from duecourse.temporal.contracts import (
        SEND_CLEARANCE,
        CollectionInput,
        CollectionResult,
        OpsAlert,
        SendClearance,
        money_text,
    )


@workflow.defn(name="LoanCollection")
class LoanCollectionWorkflow(HandOver, PlannedActions, LegalProgressReports):
    @workflow.init
    def __init__(self, inp: CollectionInput) -> None:
        self._fresh = inp.state is None
        self._strategy = inp.strategy  # the experiment arm, carried through continue-as-new
        self._pending: list[LedgerEntry] = []
        self._opening: list[LedgerEntry] = []  # written by the hand-over activity
        if inp.state is None:
            # the first run's id survives resets and continue-as-new: keys stay the same
            self._c, self._opening = Collection.begin(
                inp.loan, inp.policy, workflow.now(),
                case_id=workflow.info().first_execution_run_id)
        else:
            self._c = Collection(inp.loan, inp.policy, inp.state)
        self._version = 0
        self._visible = Visibility()
        self._alerts: list[OpsAlert] = []
        self._in_flight: InFlight | None = None
        self._timer = DueTimer()
        self._children = Children(self._c, self._child_failed)

    # ------------------------------------------------------------------ run loop
    @workflow.run
    async def run(self, inp: CollectionInput) -> CollectionResult:
        c = self._c
        self._publish()
        if self._fresh:
            await self._hand_over()
        while True:
            await self._drain()
            if c.state.is_closed:  # its timer is left to lapse: cancelling costs an event
                self._apply(tasks.cancel_pending(c, workflow.now(),
                                                 f"loan closed as {c.state.outcome}"))
                self._children.wind_down()
                await self._drain()
                break
            if self._continue_as_new_due(inp):
                await self._quiesce()
                if self._continue_as_new_due(inp) and not self._queued():
                    workflow.continue_as_new(CollectionInput(
                        loan=c.loan, policy=c.policy, state=c.state,
                        history_limit=inp.history_limit, strategy=inp.strategy))
                continue
            now = workflow.now()
            action = plan(c, now)
            if action is None:  # pragma: no cover - write-off is always planned while open
                raise ApplicationError("nothing planned for an open loan", non_retryable=True)
            if action.due_at > now:
                self._timer.arm(action.due_at, action.description)
                self._visible.show(current_details(c, now, action))
                seen = self._version
                await workflow.wait_condition(
                    lambda seen=seen: self._version != seen or self._timer.fired())
                continue  # re-plan: from the new state, or with the time now due
            await self._execute(action)
        await self._quiesce()
        s = c.state
        assert s.outcome is not None and s.closed_at is not None
        self._visible.show(current_details(c, s.closed_at, None))
        return CollectionResult(
            loan_id=c.loan.loan_id, outcome=s.outcome, reason=s.close_reason,
            outstanding=self._money(s.outstanding), total_paid=self._money(s.total_paid),
            closed_at=s.closed_at)

    def _queued(self) -> bool:
        return bool(self._pending or self._alerts or self._children.pending())

    async def _drain(self) -> None:
        """Start children, signal them, alert and write the ledger until nothing is
        queued (handlers may queue more while we await)."""
        while self._queued():
            await self._children.sync()
            await self._record_pending()

    async def _quiesce(self) -> None:
        """Before the run ends: every handler done and everything written."""
        while True:
            await self._drain()
            if workflow.all_handlers_finished():
                return
            await workflow.wait_condition(
                lambda: self._queued() or workflow.all_handlers_finished())

    def _continue_as_new_due(self, inp: CollectionInput) -> bool:
        """A fresh history when it grows long. Running children go on: they report to the
        loan's workflow id, whichever run is current, and the next run signals them by the
        ids in the state it carries."""
        info = workflow.info()
        return (info.get_current_history_length() > inp.history_limit
                or info.is_continue_as_new_suggested())

    def _child_failed(self, kind: ChildKind, child_id: str, why: str) -> None:
        entries, subject = child_failed(self._c, kind, child_id, why, workflow.now())
        self._apply(entries)
        self._queue_alert(subject, why)

    # ------------------------------------------------------------------ helpers
    def _apply(self, entries: list[LedgerEntry], write: bool = True) -> None:
        """After any change of state: queue its entries (unless an activity wrote them),
        start a legal case the loan entered, follow a freeze, fence the send in flight,
        and publish - in the same workflow task as the change, even from a handler."""
        c = self._c
        for entry in entries:
            if isinstance(entry, StageChanged):
                workflow.logger.info("stage changed", extra={
                    "loan_id": c.loan.loan_id, "from_stage": entry.from_stage,
                    "stage": entry.to_stage, "outcome": entry.outcome, "reason": entry.reason})
                if entry.to_stage == "LEGAL":
                    n = len(c.state.legal.cases) + 1
                    self._children.start_case(litigation.open_case(
                        c, f"legal-{c.loan.loan_id}-{c.state.case_id[:8]}-{n}",
                        workflow.now()))
        if write:
            self._write(entries)
        self._version += 1
        self._children.follow_freeze()
        self._fence_in_flight()
        self._publish()

    def _write(self, entries: list[LedgerEntry]) -> None:
        self._pending.extend(entries)

    def _tell(self, signal: Signal) -> None:
        """Queue a signal for a child from a handler; the loop wakes to send it."""
        self._children.tell(signal)
        self._version += 1

    def _outstanding_text(self) -> str:
        return money_text(self._c.state.outstanding, self._c.loan.currency)

    def _publish(self) -> None:
        self._visible.publish(self._c)

    # ------------------------------------------------------------------ signals
    @workflow.signal
    def report_payment(self, report: PaymentReport) -> None:
        c, now = self._c, workflow.now()
        plan = c.state.agreements.active_plan
        entries = c.apply_payment(report, now)
        applied = sum((e.applied for e in entries if isinstance(e, PaymentRecorded)),
                      start=Money.zero(c.loan.currency).amount)
        if plan is not None and applied > 0:
            self._children.tell(PlanChild(plan.workflow_id).payment(PlanPayment(
                reference=report.reference, amount=applied)))
        self._apply(entries + deals.settle_if_paid(c, now, report.actor))

    @workflow.signal
    def legal_progress(self, progress: LegalProgress) -> None:
        """Reported by the LegalCase child as the case moves."""
        litigation.mirror(self._c, progress.case)
        if (handle := LEGAL_PROGRESS.get(progress.event)) is not None:
            handle(self, progress, workflow.now())

    @workflow.signal
    def plan_progress(self, progress: PlanProgress) -> None:
        """Reported by the RepaymentPlanWorkflow child on every change."""
        self._apply(deals.plan_progress(self._c, progress, workflow.now()))

    @workflow.signal
    def record_contact_outcome(self, report: ContactOutcomeReport) -> None:
        """Record what came of a contact. One the agent made without asking first is
        judged before it joins the history (as the audit judges it); if it broke rules,
        the ledger says so, a supervisor gets a review task and ops an alert - the contact
        is recorded all the same (it happened, and the limits count it). The agent heard
        of it already: the client asked `contact_check` before signalling."""
        c, now = self._c, workflow.now()
        check = c.contact_check(report, now)
        entries = c.record_contact_outcome(report, now)
        if tasks.wants_answer(c, report) and workflow.patched("reply-opens-task"):
            entries += tasks.answer_reply(c, report, now)
        if check.broke_rules:
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
        with refusing("HoldRejected"):
            self._apply(protections.change_hold(self._c, request, workflow.now()))
        return self.status()

    @hold.validator
    def _validate_hold(self, request: HoldRequest) -> None:
        refuse(protections.hold_problem(self._c, request, workflow.now()), "HoldRejected")

    @workflow.update
    def request_contact(self, request: ContactRequest) -> Decision:
        """An agent asks before calling or visiting; an allowed contact is logged and
        counts towards the limits."""
        c, now = self._c, workflow.now()
        with refusing("ContactRejected"):
            decision, entries = c.agent_contact(request, now)
        self._apply(entries)
        return decision

    @request_contact.validator
    def _validate_contact_request(self, request: ContactRequest) -> None:
        c = self._c
        refuse(f"the loan is closed ({c.state.outcome})" if c.state.is_closed else None,
               "ContactRejected")
        refuse(f"no {request.channel} contact details on file" if request.address is None
               and recipient_for(request.channel, c.loan.borrower) is None else None,
               "ContactRejected")

    @workflow.update
    def request_callback(self, request: CallbackRequest) -> Task:
        """The borrower asks to be called at a time they choose: an agent's call task,
        due then, once the engine allows a call at that time."""
        with refusing("CallbackRejected"):
            task, entries = book_callback(self._c, request, workflow.now(),
                                          decided=workflow.patched("callback-decision"))
        self._apply(entries)
        return task

    @request_callback.validator
    def _validate_callback(self, request: CallbackRequest) -> None:
        refuse(callback_problem(self._c, request, workflow.now()), "CallbackRejected")

    @workflow.update
    def request_breathing_space(self, request: BreathingSpaceAsk) -> CollectionStatus:
        """The borrower asks for breathing space: a short pause and a supervisor's review
        (a breathing space itself starts only once the Insolvency Service registers it)."""
        with refusing("BreathingSpaceRejected"):
            self._apply(ask_for_breathing_space(self._c, request, workflow.now()))
        return self.status()

    @request_breathing_space.validator
    def _validate_breathing_space(self, request: BreathingSpaceAsk) -> None:
        refuse(ask_problem(self._c, workflow.now()), "BreathingSpaceRejected")

    @workflow.update
    def propose_plan(self, proposal: PlanProposal) -> PlanAccepted:
        c = self._c
        plans = c.state.agreements.plans
        workflow_id = f"plan-{c.loan.loan_id}-{c.state.case_id[:8]}-{len(plans) + 1}"
        with refusing("PlanRejected"):
            agreed, entries = deals.accept_plan(c, proposal, workflow.now(), workflow_id)
        self._children.start_plan(agreed)
        self._apply(entries)
        return PlanAccepted(plan_id=agreed.plan_id, workflow_id=agreed.workflow_id,
                            instalments=agreed.instalments,
                            total=Money(amount=agreed.total, currency=agreed.currency))

    @propose_plan.validator
    def _validate_plan(self, proposal: PlanProposal) -> None:
        refuse(deals.plan_problem(self._c, proposal, workflow.now()), "PlanRejected")

    @workflow.update
    def offer_settlement(self, offer: SettlementOffer) -> SettlementResult:
        with refusing("SettlementRejected"):
            settlement, entries = deals.offer_settlement(self._c, offer, workflow.now())
        self._apply(entries)
        return deals.settlement_result(self._c, settlement.settlement_id)

    @offer_settlement.validator
    def _validate_settlement(self, offer: SettlementOffer) -> None:
        refuse(deals.settlement_problem(self._c, offer, workflow.now()), "SettlementRejected")

    @workflow.update
    def decide_settlement(self, decision: SettlementDecision) -> SettlementResult:
        pending = self._c.state.agreements.open_settlement
        with refusing("SettlementRejected"):
            self._apply(deals.decide_settlement(self._c, decision, workflow.now()))
        assert pending is not None
        return deals.settlement_result(self._c, pending.settlement_id)

    @decide_settlement.validator
    def _validate_settlement_decision(self, decision: SettlementDecision) -> None:
        refuse(deals.settlement_decision_problem(self._c, decision, workflow.now()),
               "SettlementRejected")

    @workflow.update
    def assign_agent(self, assignment: Assignment) -> AssignmentResult:
        with refusing("AssignmentRejected"):
            previous, entries = deals.assign(self._c, assignment, workflow.now())
        self._apply(entries)
        return AssignmentResult(assigned_agent=assignment.agent_id, previous=previous)

    @assign_agent.validator
    def _validate_assignment(self, assignment: Assignment) -> None:
        refuse(deals.assignment_problem(self._c, assignment), "AssignmentRejected")

    @workflow.update
    def complete_task(self, done: TaskCompletion) -> TaskResult:
        c = self._c
        case = c.state.legal.case
        with refusing("TaskRejected"):
            entries = completion.complete_task(c, done, workflow.now())
        self._apply(entries)
        task = tasks.find(c, done.task_id)
        assert task is not None
        if task.kind is TaskKind.APPROVE_LEGAL:
            self._forward_decision(case, LegalDecision(
                approve=done.outcome == "approved", actor=done.actor,
                reason=done.note or done.outcome))
        elif task.kind is TaskKind.REFER_CASE and case is not None:
            self._tell(CaseChild(case.workflow_id).manual_referral(ManualReferral(
                retry=done.outcome == "retry", reference=done.note)))
        return TaskResult(task_id=task.task_id, kind=task.kind, outcome=task.outcome,
                          stage=c.state.stage)

    @complete_task.validator
    def _validate_task(self, done: TaskCompletion) -> None:
        refuse(completion.task_problem(self._c, done, workflow.now()), "TaskRejected")

    @workflow.update
    def promise_to_pay(self, request: PromiseRequest) -> PromiseAccepted:
        with refusing("PromiseRejected"):  # state moved on since validation: refuse
            promise, entries = self._c.make_promise(request, workflow.now())
        self._apply(entries)
        return PromiseAccepted(promise_id=promise.promise_id,
                               amount=Money(amount=promise.amount, currency=promise.currency),
                               due_date=promise.due_date, check_at=promise.check_at)

    @promise_to_pay.validator
    def _validate_promise(self, request: PromiseRequest) -> None:
        refuse(self._c.promise_problem(request, workflow.now()), "PromiseRejected")

    @workflow.update
    def decide_legal_referral(self, decision: LegalDecision) -> LegalDecisionResult:
        c, now = self._c, workflow.now()
        case = c.state.legal.case
        with refusing("LegalDecisionRejected"):
            self._apply(c.decide_legal(decision, now))
            self._forward_decision(case, decision)
            self._apply(tasks.resolve_subject(
                c, TaskKind.APPROVE_LEGAL, litigation.LEGAL_REFERRAL,
                "approved" if decision.approve else "rejected", decision.actor, now))
        s = c.state
        return LegalDecisionResult(approved=decision.approve, stage=s.stage,
                                   legal_phase=s.legal.phase)

    @decide_legal_referral.validator
    def _validate_legal_decision(self, decision: LegalDecision) -> None:
        refuse(self._c.legal_decision_problem(decision), "LegalDecisionRejected")

    def _forward_decision(self, case: LegalCase | None, decision: LegalDecision) -> None:
        if case is not None:
            litigation.decision_forwarded(case, decision.approve)
            self._tell(CaseChild(case.workflow_id).decision(decision))

    @workflow.update
    def migrate_rules(self, migration: RulesMigration) -> CollectionStatus:
        """Move the loan to newer rules (a new pack version, corrected holidays), with who
        and why in the ledger: the only way a changed pack reaches a running loan."""
        with refusing("MigrationRejected"):  # the validator parsed it: never fail the task
            self._apply(self._c.migrate_rules(migration, workflow.now()))
        return self.status(workflow.now())

    @migrate_rules.validator
    def _validate_migration(self, migration: RulesMigration) -> None:
        c = self._c
        refuse(f"the loan is closed ({c.state.outcome})" if c.state.is_closed else
               migration_problem(c.loan.jurisdiction, c.loan.borrower.timezone, migration),
               "MigrationRejected")

    @workflow.update
    def record_case_event(self, event: CaseEvent) -> LegalCase:
        """The legal team reports what happened in court; forwarded to the case."""
        c = self._c
        with refusing("CaseEventRejected"):
            entries = litigation.record_case_event(c, event, workflow.now())
        case = c.state.legal.case
        assert case is not None
        self._tell(CaseChild(case.workflow_id).case_event(event))
        self._apply(entries)
        return case

    @record_case_event.validator
    def _validate_case_event(self, event: CaseEvent) -> None:
        refuse(litigation.case_event_problem(self._c, event), "CaseEventRejected")

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

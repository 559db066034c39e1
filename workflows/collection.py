"""One durable workflow per overdue loan: reminder -> negotiation -> legal, until it closes.

The loop plans the next action with the pure planner, sets one timer to it, and re-plans
whenever a signal or update changes the state. Handlers only mutate state and queue
ledger entries; the loop writes them through an idempotent activity.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from duecourse import search_attributes as sa
    from duecourse.domain.calendar import local_midnight
    from duecourse.domain.collection import Collection
    from duecourse.domain.commands import (
        ALERT_OPS,
        OPEN_LOAN,
        RECORD_ENTRIES,
        SEND_MESSAGE,
        CollectionInput,
        CollectionResult,
        MessageSent,
        OpenLoan,
        OpsAlert,
        RecordEntries,
        SendMessage,
        money_text,
    )
    from duecourse.domain.contact import recipient_for
    from duecourse.domain.entries import LedgerEntry, StageChanged
    from duecourse.domain.money import Money
    from duecourse.domain.planner import ActionKind, PlannedAction, plan
    from duecourse.domain.policy import Channel, ContactStep
    from duecourse.domain.requests import (
        CancelRequest,
        ContactOutcomeReport,
        LegalDecision,
        LegalDecisionResult,
        PaymentReport,
        PromiseAccepted,
        PromiseRequest,
    )
    from duecourse.domain.status import CollectionStatus, describe

LEDGER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                           maximum_interval=timedelta(minutes=5))
"""Ledger writes retry until the database is back: a fact must never be dropped."""

SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                         maximum_interval=timedelta(minutes=2), maximum_attempts=8,
                         non_retryable_error_types=["TemplateError", "InvalidMessage"])
"""Sends give up after a few attempts; a failed contact is recorded, not fatal."""


@workflow.defn(name="LoanCollection")
class LoanCollectionWorkflow:
    @workflow.init
    def __init__(self, inp: CollectionInput) -> None:
        now = workflow.now()
        self._fresh = inp.state is None
        self._pending: list[LedgerEntry] = []
        if inp.state is None:
            self._c, self._pending = Collection.begin(inp.loan, inp.policy, now,
                                                     case_id=workflow.info().run_id)
        else:
            self._c = Collection(inp.loan, inp.policy, inp.state)
        self._input = inp
        self._version = 0
        self._upserted: dict[str, object] = {}

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
            await workflow.execute_activity(
                OPEN_LOAN, OpenLoan(case_id=c.state.case_id,
                                    workflow_id=workflow.info().workflow_id, loan=c.loan,
                                    policy=c.policy.label, opened_at=c.state.opened_at),
                start_to_close_timeout=timedelta(seconds=30), retry_policy=LEDGER_RETRY)
        while True:
            await self._flush()
            if c.state.is_closed:
                break
            if workflow.info().get_current_history_length() > inp.history_limit or \
                    workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._flush()
                workflow.continue_as_new(CollectionInput(
                    loan=c.loan, policy=c.policy, state=c.state,
                    history_limit=inp.history_limit))
            now = workflow.now()
            action = plan(c, now)
            if action is None:  # pragma: no cover - write-off is always planned while open
                raise ApplicationError("nothing planned for an open loan", non_retryable=True)
            if action.due_at > now:
                seen = self._version
                workflow.set_current_details(
                    f"Next: {action.description} at {action.due_at.isoformat()}")
                try:
                    await workflow.wait_condition(lambda seen=seen: self._version != seen,
                                                  timeout=action.due_at - now,
                                                  timeout_summary=action.description)
                    continue  # something happened: re-plan from the new state
                except TimeoutError:
                    continue  # due now: the next pass plans it with the current time
            await self._execute(action)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._flush()
        s = c.state
        assert s.outcome is not None and s.closed_at is not None
        return CollectionResult(
            loan_id=c.loan.loan_id, outcome=s.outcome, reason=s.close_reason,
            outstanding=Money(amount=s.outstanding, currency=c.loan.currency),
            total_paid=Money(amount=s.total_paid, currency=c.loan.currency),
            closed_at=s.closed_at)

    async def _execute(self, action: PlannedAction) -> None:
        c, now = self._c, workflow.now()
        kind = action.kind
        if kind is ActionKind.WRITE_OFF:
            self._apply(c.write_off(now))
        elif kind is ActionKind.CHECK_PROMISE:
            self._apply(c.check_promise(now))
        elif kind is ActionKind.END_REMINDER:
            self._apply(c.end_reminder(now))
        elif kind is ActionKind.END_NEGOTIATION:
            self._apply(c.end_negotiation(now))
        elif kind is ActionKind.CONTACT:
            assert action.step is not None
            for name in action.superseded:
                self._apply(c.record_step(name, "skipped", now, "superseded by a later step"))
            sent, detail = await self._contact(action.step)
            self._apply(c.record_step(action.step.name, "sent" if sent else "failed",
                                      workflow.now(), detail))
        elif kind is ActionKind.SEND_DEMAND:
            assert action.step is not None
            sent, detail = await self._contact(action.step, fallback=Channel.EMAIL)
            self._apply(c.record_step(action.step.name, "sent" if sent else "failed",
                                      workflow.now(), detail))
            self._apply(c.demand_sent(workflow.now(), sent, detail))
            if not sent:
                await self._alert_ops("Demand letter undeliverable", detail)
        elif kind is ActionKind.CURE_EXPIRED:
            self._apply(c.cure_expired(now))
            await self._alert_ops("Legal referral awaiting supervisor approval",
                                  f"Cure period ended with {self._outstanding_text()} unpaid.")
        elif kind is ActionKind.APPROVAL_OVERDUE:
            self._apply(c.approval_overdue(now))
            await self._alert_ops(
                f"Legal approval overdue (escalation {c.state.approval_escalations})",
                f"No supervisor decision since {c.state.legal_phase_at}; "
                f"{self._outstanding_text()} unpaid.")

    # ------------------------------------------------------------------ activities
    async def _contact(self, step: ContactStep,
                       fallback: Channel | None = None) -> tuple[bool, str]:
        """Send one step's message; returns (sent, detail). Failures are recorded, not fatal."""
        c = self._c
        channel = step.channel
        recipient = recipient_for(channel, c.loan.borrower)
        if recipient is None and fallback is not None:
            channel, recipient = fallback, recipient_for(fallback, c.loan.borrower)
        if recipient is None:
            return False, f"no {step.channel} contact details on file"
        now = workflow.now()
        request = SendMessage(
            idempotency_key=f"{c.state.case_id}:contact:{c.state.visit.visit}:{step.name}",
            case_id=c.state.case_id, workflow_id=workflow.info().workflow_id,
            loan_id=c.loan.loan_id,
            stage=c.state.stage, step=step.name, channel=channel, template=step.template,
            language=c.loan.borrower.language, recipient=recipient,
            jurisdiction=c.loan.jurisdiction, scheduled_for=now,
            context={
                "borrower_name": c.loan.borrower.name,
                "loan_id": c.loan.loan_id,
                "amount": self._outstanding_text(),
                "due_date": c.loan.due_date.isoformat(),
                "days_past_due": str(c.dpd(now)),
                "cure_days": str(c.policy.legal.cure_period.days),
            })
        try:
            result = await workflow.execute_activity(
                SEND_MESSAGE, request, result_type=MessageSent,
                start_to_close_timeout=timedelta(seconds=30), retry_policy=SEND_RETRY)
        except ActivityError as err:
            cause = err.cause.message if isinstance(err.cause, ApplicationError) else str(err)
            workflow.logger.warning("contact failed", extra={"step": step.name,
                                                             "error": cause})
            return False, f"send failed: {cause}"
        return True, f"{channel} message {result.message_id}"

    async def _alert_ops(self, subject: str, body: str) -> None:
        c = self._c
        await workflow.execute_activity(
            ALERT_OPS, OpsAlert(
                idempotency_key=f"{c.state.case_id}:alert:{c.state.event_seq}",
                case_id=c.state.case_id, workflow_id=workflow.info().workflow_id,
            loan_id=c.loan.loan_id,
                subject=f"[{c.loan.loan_id}] {subject}", body=body, raised_at=workflow.now()),
            start_to_close_timeout=timedelta(seconds=30), retry_policy=LEDGER_RETRY)

    async def _flush(self) -> None:
        """Write queued ledger entries; handlers may queue more meanwhile."""
        while self._pending:
            batch, self._pending = self._pending, []
            await workflow.execute_activity(
                RECORD_ENTRIES, RecordEntries(case_id=self._c.state.case_id,
                                              workflow_id=workflow.info().workflow_id,
                                              loan_id=self._c.loan.loan_id, entries=batch),
                start_to_close_timeout=timedelta(seconds=30), retry_policy=LEDGER_RETRY)

    # ------------------------------------------------------------------ helpers
    def _apply(self, entries: list[LedgerEntry]) -> None:
        for entry in entries:
            if isinstance(entry, StageChanged):
                workflow.logger.info("stage changed", extra={
                    "loan_id": self._c.loan.loan_id, "from_stage": entry.from_stage,
                    "stage": entry.to_stage, "outcome": entry.outcome,
                    "reason": entry.reason})
        self._pending.extend(entries)
        self._version += 1
        self._publish()  # in the same workflow task as the change, even from a handler

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
            SearchAttributePair(sa.DUE_DATE, local_midnight(c.loan.due_date,
                                                            c.loan.borrower.timezone)),
        ]
        if s.outcome is not None:
            values.append(SearchAttributePair(sa.COLLECTION_OUTCOME, s.outcome.value))
        changed = [p.key.value_set(p.value) for p in values
                   if self._upserted.get(p.key.name) != p.value]
        if changed:
            workflow.upsert_search_attributes(changed)
            self._upserted.update({p.key.name: p.value for p in values})

    # ------------------------------------------------------------------ signals
    @workflow.signal
    def report_payment(self, report: PaymentReport) -> None:
        self._apply(self._c.apply_payment(report, workflow.now()))

    @workflow.signal
    def record_contact_outcome(self, report: ContactOutcomeReport) -> None:
        self._apply(self._c.record_contact_outcome(report, workflow.now()))

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        self._apply(self._c.cancel(request, workflow.now()))

    # ------------------------------------------------------------------ updates
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
        try:
            self._apply(self._c.decide_legal(decision, workflow.now()))
        except ValueError as err:
            raise ApplicationError(str(err), type="LegalDecisionRejected") from None
        s = self._c.state
        return LegalDecisionResult(approved=decision.approve, stage=s.stage,
                                   legal_phase=s.legal_phase)

    @decide_legal_referral.validator
    def _validate_legal_decision(self, decision: LegalDecision) -> None:
        if problem := self._c.legal_decision_problem(decision):
            raise ApplicationError(problem, type="LegalDecisionRejected")

    # ------------------------------------------------------------------ queries
    @workflow.query
    def status(self) -> CollectionStatus:
        now = workflow.now()
        return describe(self._c, now, plan(self._c, now))


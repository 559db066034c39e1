"""One facade over the Temporal client for starters, the CLI and (later) the API.

It addresses workflows by name and id only (never imports workflow code), maps Temporal
errors to domain errors with clear messages, and starts idempotently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from duecourse import search_attributes as sa
from duecourse.domain.agreements import terms
from duecourse.domain.case import commands
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.compliance import Decision, requests
from duecourse.domain.contact.outcomes import ContactCheck, ReportCheck
from duecourse.domain.legal.case import CaseEvent, LegalCase
from duecourse.domain.loan import LoanIntake, workflow_id_for
from duecourse.domain.policy import Policy
from duecourse.domain.rules import RulesBasis, RulesMigration
from duecourse.domain.work.breathing import BreathingSpaceAsk
from duecourse.domain.work.callbacks import CallbackRequest
from duecourse.domain.work.queue import Task, TaskCompletion, TaskKind, TaskResult
from duecourse.temporal.contracts import CollectionInput, CollectionResult, StrategyChoice
from duecourse.temporal.fairness import priority_for
from duecourse.temporal.payment_trace import (
    AMBIGUOUS,
    HISTORY_TIMEOUT,
    SETTLE_SECONDS,
    PaymentFate,
    PaymentOutcome,
    PaymentTrace,
    PaymentUnconfirmed,
    trace_payment,
)

WORKFLOW_NAME = "LoanCollection"


class LoanNotFound(LookupError):
    """No collection workflow exists for this loan."""


class LoanClosed(RuntimeError):
    """The loan's collection has ended; it accepts no more signals."""


class ActionRejected(ValueError):
    """The workflow refused an update; the message is the validator's reason."""


@dataclass(frozen=True)
class StartOutcome:
    loan_id: str
    workflow_id: str
    run_id: str | None
    started: bool  # False: the loan was already in collection


_INDEXED = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeIndexedValueType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    SearchAttributeIndexedValueType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    SearchAttributeIndexedValueType.BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register any missing custom search attributes; returns the names added.

    Servers that cannot list them (the time-skipping test server) get all of them added.
    """
    wanted = {k.name: _INDEXED[k.indexed_value_type] for k in sa.ALL}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace))
        missing = {n: v for n, v in wanted.items() if n not in existing.custom_attributes}
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        missing = wanted
    if missing:
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=client.namespace, search_attributes=missing))
    return sorted(missing)


def _loan_summary(loan: LoanIntake) -> str:
    """The Temporal UI's summary: no borrower PII (the UI and the cluster's database show
    it to anyone with access); the workflow's current details carry what changes."""
    return (f"Loan {loan.loan_id} · {loan.outstanding_money} at hand-over · "
            f"due {loan.due_date} · {loan.jurisdiction}")


class CollectionClient:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    def handle(self, loan_id: str) -> WorkflowHandle[Any, CollectionResult]:
        return self.client.get_workflow_handle(workflow_id_for(loan_id),
                                               result_type=CollectionResult)

    async def start(self, loan: LoanIntake, policy: Policy,
                    platform: str | None = None,
                    strategy: StrategyChoice | None = None) -> StartOutcome:
        """Start collection; a loan already in collection returns its running workflow.
        `platform` (the id of the platform that handed it over; None: the lender's own) is
        kept as the Platform search attribute, so a platform's searches find its own
        loans, and sets the workflow's fairness key (`duecourse.temporal.fairness`).
        `strategy` (the experiment arm whose policy `policy` is) goes on the case and is
        kept as the Strategy search attribute."""
        attributes = TypedSearchAttributes(
            ([SearchAttributePair(sa.PLATFORM, platform)] if platform else [])
            + ([SearchAttributePair(sa.STRATEGY, strategy.strategy)] if strategy else []))
        handle = await self.client.start_workflow(
            WORKFLOW_NAME, CollectionInput(loan=loan, policy=policy, strategy=strategy),
            id=loan.workflow_id, task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=CollectionResult, static_summary=_loan_summary(loan),
            search_attributes=attributes, priority=priority_for(platform))
        return StartOutcome(loan_id=loan.loan_id, workflow_id=handle.id,
                            run_id=handle.result_run_id, started=_was_started(handle))

    async def status(self, loan_id: str, as_of: datetime | None = None) -> CollectionStatus:
        """The loan as of `as_of` (default: now), not as of its last workflow task."""
        with self._translated(loan_id):
            return await self.handle(loan_id).query(
                "status", as_of or datetime.now(UTC), result_type=CollectionStatus)

    async def result(self, loan_id: str) -> CollectionResult:
        return await self.handle(loan_id).result()

    async def is_running(self, loan_id: str) -> bool:
        with self._translated(loan_id):
            desc = await self.handle(loan_id).describe()
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def report_payment(self, loan_id: str, report: commands.PaymentReport, *,
                             rpc_timeout: timedelta | None = None,
                             settle: float = SETTLE_SECONDS) -> PaymentOutcome:
        """Report a payment and say truthfully what became of it.

        A signal's answer can be lost after the server recorded it (a client timeout:
        `CANCELLED: Timeout expired`; a dropped connection), and a closed loan refuses
        every signal - also the retry of a payment that closed it. In both cases the
        loan's history settles it (the reference is idempotent): an applied reference is a
        `duplicate`, a received one `accepted`; one the history lacks raises
        PaymentUnconfirmed saying it is safe to retry with the same reference.
        """
        ref = report.reference
        try:
            await self.handle(loan_id).signal("report_payment", report, rpc_timeout=rpc_timeout)
        except RPCError as err:
            problem = self._translate(loan_id, err)
            closed = isinstance(problem, LoanClosed)
            if not closed and err.status not in AMBIGUOUS:
                raise problem from err  # refused outright (unknown loan, bad request)
            why = f"{err.status.name}: {err.message}"
            try:
                trace = await self._settled_trace(loan_id, ref, 0 if closed else settle)
            except (RPCError, LookupError, LoanClosed) as second:
                if closed:
                    raise problem from err
                raise PaymentUnconfirmed(
                    f"payment {ref} may not have reached loan {loan_id}: Temporal did not "
                    f"answer ({why}) and the loan's history could not be read either "
                    f"({second}); retry with the same reference, which is applied at most "
                    "once", err, None) from err
            if trace.fate is PaymentFate.APPLIED and (closed or trace.reports > 1):
                return PaymentOutcome(ref, "duplicate", trace.fate,
                                      f"{trace.sentence()}; reported again, nothing changed",
                                      trace, None if closed else why)
            if closed:
                ended = trace.outcome or trace.ended or "closed"
                raise LoanClosed(f"collection for loan {loan_id} has ended ({ended}); payment "
                                 f"{ref} was not applied") from err
            if trace.fate is PaymentFate.ABSENT:
                raise PaymentUnconfirmed(
                    f"payment {ref} was not applied (Temporal has no record of it: {why}); it "
                    "is safe to retry with the same reference", err, False) from err
            return PaymentOutcome(ref, "accepted", trace.fate,
                                  f"{trace.sentence()} (Temporal's reply was lost: {why})",
                                  trace, why)
        return PaymentOutcome(ref, "accepted", PaymentFate.RECEIVED,
                              f"payment {ref} is being applied")

    async def payment_trace(self, loan_id: str, reference: str, *,
                            rpc_timeout: timedelta | None = HISTORY_TIMEOUT) -> PaymentTrace:
        """What the loan's workflow history says of `reference`; needs no worker."""
        handle = self.handle(loan_id)
        with self._translated(loan_id):
            events = [e async for e in handle.fetch_history_events(rpc_timeout=rpc_timeout)]
        try:
            return await trace_payment(self.client, loan_id, reference, events)
        except (ValueError, TypeError, KeyError) as err:  # a payload this code cannot read
            raise LookupError(f"the history of loan {loan_id} could not be decoded "
                              f"({type(err).__name__}: {err})") from err

    async def await_payment(self, loan_id: str, reference: str, *, within: float,
                            poll: float = 0.25) -> PaymentTrace:
        """The reference's trace once the workflow has applied or refused it, or as it
        stands after `within` seconds (RECEIVED: no worker has processed it yet)."""
        deadline = time.monotonic() + within
        while True:
            trace = await self.payment_trace(loan_id, reference)
            if trace.fate is not PaymentFate.RECEIVED or time.monotonic() >= deadline:
                return trace
            await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            poll = min(poll * 1.5, 1.0)

    async def _settled_trace(self, loan_id: str, reference: str,
                             settle: float) -> PaymentTrace:
        """The trace, read again for up to `settle` seconds while the reference is absent:
        a signal whose reply was lost may still be on its way into the history."""
        deadline = time.monotonic() + settle
        while True:
            trace = await self.payment_trace(loan_id, reference)
            if trace.fate is not PaymentFate.ABSENT or time.monotonic() >= deadline:
                return trace
            await asyncio.sleep(0.25)

    async def record_contact_outcome(self, loan_id: str, report: commands.ContactOutcomeReport,
                                     at: datetime | None = None) -> ReportCheck | None:
        """Report what came of a contact, and say at once which rules it broke, if any.

        A signal cannot answer, so the workflow's `contact_check` query judges the report
        first - by the same domain function the signal then records it with - and, when
        it broke rules, the review task the signal opened is looked up after it. `at` is
        the caller's now (default: this clock). None: it could not be checked now (no
        worker answered within a few seconds, or one older than the query); it is recorded
        all the same - a signal needs no worker - and the workflow reviews it when it
        runs, the audit later. The ledger is the record: a fact arriving between the
        check and the signal may change what is recorded.
        """
        when = at or datetime.now(UTC)
        try:
            check: ReportCheck | None = await self.handle(loan_id).query(
                "contact_check", ContactCheck(report=report, at=when), result_type=ReportCheck,
                rpc_timeout=timedelta(seconds=5))
        except WorkflowQueryFailedError:  # never lose the report for want of the check
            check = None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise self._translate(loan_id, err) from err
            check = None  # no worker to answer: the signal is still accepted
        if check is None or not check.broke_rules:
            await self._signal(loan_id, "record_contact_outcome", report)
            return check

        async def reviews() -> list[str] | None:
            """The open review tasks, oldest first; None if the loan cannot say now (naming
            the review is a courtesy: it never stops or fails the report)."""
            try:
                return [t.task_id for t in (await self.status(loan_id, when)).open_tasks
                        if t.kind is TaskKind.REVIEW_VIOLATION]
            except (RPCError, WorkflowQueryFailedError, LoanClosed, LoanNotFound):
                return None

        before = await reviews()
        await self._signal(loan_id, "record_contact_outcome", report)
        after = await reviews() if before is not None else None
        opened = [t for t in after or [] if t not in (before or [])]
        return check.model_copy(update={"review_task": opened[-1] if opened else None})

    async def cancel(self, loan_id: str, request: commands.CancelRequest) -> None:
        await self._signal(loan_id, "cancel", request)

    async def update_contact_preferences(self, loan_id: str,
                                         change: requests.PreferenceChange) -> None:
        await self._signal(loan_id, "update_contact_preferences", change)

    async def dispute(self, loan_id: str, change: requests.DisputeChange) -> None:
        await self._signal(loan_id, "dispute", change)

    async def life_event(self, loan_id: str, event: requests.LifeEvent) -> None:
        await self._signal(loan_id, "life_event", event)

    async def hold(self, loan_id: str, request: requests.HoldRequest) -> CollectionStatus:
        return await self._update(loan_id, "hold", request, CollectionStatus)

    async def request_contact(self, loan_id: str, request: requests.ContactRequest) -> Decision:
        """Ask the loan's compliance engine whether a contact may happen now."""
        return await self._update(loan_id, "request_contact", request, Decision)

    async def request_callback(self, loan_id: str, request: CallbackRequest) -> Task:
        """Book a call back at the borrower's chosen time (refused when no call is allowed
        then)."""
        return await self._update(loan_id, "request_callback", request, Task)

    async def request_breathing_space(self, loan_id: str,
                                      request: BreathingSpaceAsk) -> CollectionStatus:
        """The borrower's own breathing space request: a pause and a review task."""
        return await self._update(loan_id, "request_breathing_space", request,
                                  CollectionStatus)

    async def propose_plan(self, loan_id: str,
                           proposal: terms.PlanProposal) -> terms.PlanAccepted:
        return await self._update(loan_id, "propose_plan", proposal, terms.PlanAccepted)

    async def offer_settlement(self, loan_id: str,
                               offer: terms.SettlementOffer) -> terms.SettlementResult:
        return await self._update(loan_id, "offer_settlement", offer, terms.SettlementResult)

    async def decide_settlement(self, loan_id: str,
                                decision: terms.SettlementDecision) -> terms.SettlementResult:
        return await self._update(loan_id, "decide_settlement", decision,
                                  terms.SettlementResult)

    async def assign_agent(self, loan_id: str,
                           assignment: terms.Assignment) -> terms.AssignmentResult:
        return await self._update(loan_id, "assign_agent", assignment, terms.AssignmentResult)

    async def complete_task(self, loan_id: str, done: TaskCompletion) -> TaskResult:
        return await self._update(loan_id, "complete_task", done, TaskResult)

    async def record_case_event(self, loan_id: str, event: CaseEvent) -> LegalCase:
        return await self._update(loan_id, "record_case_event", event, LegalCase)

    async def rules(self, loan_id: str) -> RulesBasis:
        with self._translated(loan_id):
            return await self.handle(loan_id).query("rules", result_type=RulesBasis)

    async def migrate_rules(self, loan_id: str, migration: RulesMigration) -> CollectionStatus:
        return await self._update(loan_id, "migrate_rules", migration, CollectionStatus)

    async def promise_to_pay(self, loan_id: str,
                             request: commands.PromiseRequest) -> commands.PromiseAccepted:
        return await self._update(loan_id, "promise_to_pay", request, commands.PromiseAccepted)

    async def decide_legal_referral(self, loan_id: str, decision: commands.LegalDecision,
                                    ) -> commands.LegalDecisionResult:
        return await self._update(loan_id, "decide_legal_referral", decision,
                                  commands.LegalDecisionResult)

    # ---------------------------------------------------------------- internals
    @contextmanager
    def _translated(self, loan_id: str) -> Iterator[None]:
        """Raise Temporal's RPC errors as the domain's (LoanNotFound, LoanClosed)."""
        try:
            yield
        except RPCError as err:
            raise self._translate(loan_id, err) from err

    async def _signal(self, loan_id: str, name: str, arg: Any) -> None:
        with self._translated(loan_id):
            await self.handle(loan_id).signal(name, arg)

    async def _update(self, loan_id: str, name: str, arg: Any, result_type: type) -> Any:
        try:
            with self._translated(loan_id):
                return await self.handle(loan_id).execute_update(name, arg,
                                                                 result_type=result_type)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise ActionRejected(message) from err

    @staticmethod
    def _translate(loan_id: str, err: RPCError) -> Exception:
        if err.status == RPCStatusCode.NOT_FOUND:
            if "completed" in err.message or "closed" in err.message:
                return LoanClosed(f"collection for loan {loan_id} has ended")
            return LoanNotFound(f"no collection found for loan {loan_id}")
        if err.status == RPCStatusCode.FAILED_PRECONDITION:
            return LoanClosed(f"collection for loan {loan_id} has ended: {err.message}")
        return err


def _was_started(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the start created a run (False when USE_EXISTING returned a running one).

    The SDK keeps the StartWorkflowExecution response privately; its `started` flag is the
    server's authoritative answer, so read it rather than guessing from run ids.
    """
    response = getattr(handle, "_start_workflow_response", None)
    return bool(getattr(response, "started", True))

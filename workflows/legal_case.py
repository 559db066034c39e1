"""LegalCaseWorkflow: the legal stage of one loan, as a child of the loan's workflow.

Demand letter (sent by the parent, through the compliance engine), cure period, the
supervisor's approval with a timeout that escalates, referral to the legal partner (when
the partner cannot be reached after a few minutes of retries, a person refers it by hand
or asks for another try: the parent opens a refer_case task), then the case events the
legal team reports until the case closes. Timers stop while the
parent says collection is frozen (dispute, hold, bankruptcy); the parent closes the case
when the loan is paid or otherwise ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.case.commands import LegalDecision
    from duecourse.domain.legal.case import (
        CaseEvent,
        CaseEventKind,
        DemandResult,
        LegalCase,
        LegalCaseInput,
        LegalProgress,
        ManualReferral,
        Referral,
        ReferralReceipt,
        ReferralRequest,
    )
    from duecourse.temporal.contracts import REFER_TO_PARTNER

REFERRAL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=2), maximum_attempts=8,
                             non_retryable_error_types=["ChannelError", "LedgerDataError"])
"""About eight minutes of retries; a partner channel that keeps failing goes to a person."""


@workflow.defn(name="LegalCase")
class LegalCaseWorkflow:
    @workflow.init
    def __init__(self, inp: LegalCaseInput) -> None:
        self._case: LegalCase = inp.case.model_copy(deep=True)
        self._demand: DemandResult | None = None
        self._decision: LegalDecision | None = None
        self._events: list[CaseEvent] = []
        self._frozen = False
        self._closing: str | None = None
        self._manual: ManualReferral | None = None

    @workflow.run
    async def run(self, inp: LegalCaseInput) -> LegalCase:
        case = self._case
        await self._notify(inp, "send_demand")
        await workflow.wait_condition(lambda: self._demand is not None or self._stopping())
        if self._stopping():
            return self._close("withdrawn", self._closing or "")
        assert self._demand is not None
        if self._demand.delivered:
            self._phase("CURE_PERIOD")
            if await self._wait(inp.cure_period, lambda: False):
                return self._close("withdrawn", self._closing or "")
        self._phase("AWAITING_APPROVAL")
        await self._notify(inp, "approval_requested")
        while self._decision is None:
            if await self._wait(inp.approval_timeout, lambda: self._decision is not None):
                if self._stopping():
                    return self._close("withdrawn", self._closing or "")
                break
            case.escalations += 1
            await self._notify(inp, "approval_overdue")
        assert self._decision is not None
        if not self._decision.approve:
            return self._close("rejected", self._decision.reason)
        reference = await self._refer(inp, self._decision.reason)
        if reference is None:
            return self._close("withdrawn", self._closing or "")
        case.referral = Referral(partner=inp.partner, reference=reference,
                                 referred_at=workflow.now())
        self._phase("REFERRED")
        await self._notify(inp, "referred")
        while case.outcome is None:
            await workflow.wait_condition(lambda: bool(self._events) or self._stopping())
            if self._stopping():
                return self._close("withdrawn", self._closing or "")
            for event in self._events:
                case.events.append(event)
                self._phase(event.kind.value.upper())
                if event.kind is CaseEventKind.CLOSED:
                    case.outcome = event.outcome
            self._events.clear()
        await self._notify(inp, "closed")
        return case

    # ----------------------------------------------------------------- helpers
    async def _refer(self, inp: LegalCaseInput, summary: str) -> str | None:
        """Hand the case to the partner; when that keeps failing, a person refers it by
        hand or asks for another try (the parent opens a refer_case task). None when the
        case is closed meanwhile."""
        while True:
            try:
                receipt = await workflow.execute_activity(
                    REFER_TO_PARTNER, ReferralRequest(
                        idempotency_key=f"{workflow.info().workflow_id}:referral",
                        case_id=inp.collection_case_id, loan_id=inp.loan_id,
                        case_ref=self._case.case_ref, partner=inp.partner, summary=summary,
                        requested_at=workflow.now()),
                    result_type=ReferralReceipt, start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=REFERRAL_RETRY)
                return receipt.reference
            except ActivityError as err:
                cause = err.cause
                detail = cause.message if isinstance(cause, ApplicationError) else str(err)
            self._manual = None
            await self._notify(inp, "referral_failed", detail)
            await workflow.wait_condition(lambda: self._manual is not None or self._stopping())
            if self._stopping():
                return None
            assert self._manual is not None
            if not self._manual.retry:
                return self._manual.reference

    def _stopping(self) -> bool:
        return self._closing is not None

    def _phase(self, phase: str) -> None:
        self._case.phase, self._case.phase_at = phase, workflow.now()

    def _close(self, outcome: str, why: str) -> LegalCase:
        self._case.outcome = outcome
        self._phase("CLOSED")
        workflow.logger.info("legal case closed", extra={"outcome": outcome, "why": why})
        return self._case

    async def _wait(self, duration: timedelta, done: Callable[[], bool]) -> bool:
        """Wait `duration` of unfrozen time; True if `done()` or closing came first."""
        remaining = duration
        while remaining > timedelta(0):
            if self._frozen:
                await workflow.wait_condition(lambda: not self._frozen or self._stopping())
            if done() or self._stopping():
                return True
            started = workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: done() or self._stopping() or self._frozen, timeout=remaining,
                    timeout_summary=f"{self._case.phase.lower().replace('_', ' ')} ends")
            except TimeoutError:
                return False
            if done() or self._stopping():
                return True
            remaining -= workflow.now() - started  # frozen: keep the time not yet used
        return False

    async def _notify(self, inp: LegalCaseInput, event: str, detail: str = "") -> None:
        parent = workflow.get_external_workflow_handle(inp.parent_workflow_id)
        try:
            await parent.signal("legal_progress", LegalProgress(
                event=event, case=self._case, detail=detail))  # type: ignore[arg-type]
        except FailureError as err:  # the loan closed meanwhile: nothing left to tell
            workflow.logger.warning("parent not signalled", extra={"error": str(err)})

    # ----------------------------------------------------------------- signals
    @workflow.signal
    def demand_result(self, result: DemandResult) -> None:
        self._demand = result

    @workflow.signal
    def decision(self, decision: LegalDecision) -> None:
        self._decision = decision

    @workflow.signal
    def case_event(self, event: CaseEvent) -> None:
        self._events.append(event)

    @workflow.signal
    def freeze(self, frozen: bool) -> None:
        self._frozen = frozen

    @workflow.signal
    def close(self, reason: str) -> None:
        self._closing = reason

    @workflow.signal
    def manual_referral(self, referral: ManualReferral) -> None:
        """From the parent: a person referred the case by hand, or asks to try again."""
        self._manual = referral

    @workflow.query
    def case(self) -> LegalCase:
        return self._case

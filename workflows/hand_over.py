"""The loan's ledger side: the hand-over in one activity, then batches of entries.

`open_loan` opens the case, takes its rules snapshot, records the first stage and takes
the first score (the score's fact number is reserved first, so the activity writes the
very entry the workflow then holds as written). Later entries queue in `_pending` and
the loop writes them with `record_entries`, the balance their events announce with them.
"""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from duecourse.workflows.supervision import Supervision

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.contact.protections import change_preferences, standing_at_hand_over
    from duecourse.domain.entries import LedgerEntry
    from duecourse.domain.money import Money
    from duecourse.temporal.contracts import (
        OPEN_LOAN,
        RECORD_ENTRIES,
        HandedOver,
        OpenLoan,
        RecordEntries,
        StrategyChoice,
    )


CONSENTS_AT_HAND_OVER = "consents-at-hand-over"
"""Patch: the loan starts from the consent ledger's standing. A history whose hand-over
result carried consents that an older worker ignored replays without applying them."""


class HandOver(Supervision):
    """Mixed into LoanCollectionWorkflow, which provides the state and `_apply`."""

    _pending: list[LedgerEntry]
    _opening: list[LedgerEntry]  # the first stage's entries, for the hand-over to write
    _strategy: StrategyChoice | None  # the experiment arm, for the case to record

    def _apply(self, entries: list[LedgerEntry],
               write: bool = True) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    def _money(self, amount: Decimal) -> Money:
        return Money(amount=amount, currency=self._c.loan.currency)

    async def _record_pending(self) -> None:
        """Write queued entries and alerts until none are left (handlers may queue more
        meanwhile): one activity per batch."""
        c = self._c
        while self._pending or self._alerts:
            batch, alerts = list(self._pending), list(self._alerts)
            await self._ledger_call(RECORD_ENTRIES, RecordEntries(
                case_id=c.state.case_id, workflow_id=workflow.info().workflow_id,
                loan_id=c.loan.loan_id, entries=batch, alerts=alerts,
                outstanding=self._money(c.state.outstanding)), "recording ledger entries")
            del self._pending[:len(batch)]  # written: handlers may have added more
            del self._alerts[:len(alerts)]

    async def _hand_over(self) -> None:
        """One activity opens the case, takes its rules snapshot, records the first
        stage and the first score; refusals (closed loan, no rules) fail the workflow.
        What handlers queued meanwhile (a payment in the first workflow task) is written
        after it, by `record_entries`, as every later fact is."""
        c, now = self._c, workflow.now()
        if c.dpd(now) < 1:
            raise ApplicationError(
                f"loan {c.loan.loan_id} is not overdue (due {c.loan.due_date} in "
                f"{c.loan.borrower.timezone})", type="LoanNotOverdue", non_retryable=True)
        segment = c.state.segment
        facts, number = c.begin_scoring(now), c.reserve_event_number()
        handed: HandedOver = await self._ledger_call(
            OPEN_LOAN, OpenLoan(
                case_id=c.state.case_id, workflow_id=workflow.info().workflow_id,
                loan=c.loan, policy=c.policy.label, opened_at=c.state.opened_at,
                compliance=c.compliance_record(), overrides=c.policy.compliance,
                entries=self._opening, outstanding=self._money(c.state.outstanding), score=facts,
                segment=segment, score_event=number, scored_at=now,
                strategy=self._strategy),
            "opening the case", result_type=HandedOver,
            fatal=("LoanAlreadyClosed", "RulesUnavailable"))
        c.adopt_rules(handed.rules)  # from here on, whatever is installed later
        self._apply(c.scored(now, handed.score, handed.score_failure, number), write=False)
        if handed.score is None:
            self._queue_alert("Scoring failed; the segment is kept", handed.score_failure)
        standing = standing_at_hand_over(handed.consents) if handed.consents else None
        if standing is not None and workflow.patched(CONSENTS_AT_HAND_OVER):
            self._apply(change_preferences(c, standing, now))


"""Ledger-writing activities. Every write is keyed, so retries are harmless."""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duecourse.activities.errors import ledger_errors
from duecourse.activities.scoring import Scorer, score
from duecourse.domain.case.aggregate import scoring_entries
from duecourse.domain.case.reopening import LoanAlreadyClosed
from duecourse.domain.scoring import ScoreResult
from duecourse.inbound.store import InboundStore
from duecourse.observability import business_metrics
from duecourse.snapshots import take_snapshot
from duecourse.store.ledger import Ledger
from duecourse.temporal.contracts import (
    ALERT_OPS,
    OPEN_LOAN,
    RECORD_ENTRIES,
    HandedOver,
    OpenLoan,
    OpsAlert,
    RecordEntries,
)

log = structlog.get_logger(__name__)

SCORE_ATTEMPTS = 5
"""Attempts at hand-over while the scorer is unreachable; then the loan goes on unscored
(and ops are told), as a scorer that fails for good does at once."""


class LedgerActivities:
    def __init__(self, ledger: Ledger, scorer: Scorer) -> None:
        self._ledger = ledger
        self._scorer = scorer

    @activity.defn(name=OPEN_LOAN)
    async def open_loan(self, cmd: OpenLoan) -> HandedOver:
        """The whole hand-over in one activity: open the case, take the rules snapshot it
        runs on (its pack is also what the ledger keeps for the audit), score the loan and
        record the hand-over's entries with the score's. A loan whose closed case covers
        this due date fails for good (`LoanAlreadyClosed`), since retrying can never make
        it startable; every write is keyed, so a retry changes nothing."""
        loan = cmd.loan
        try:
            rules = take_snapshot(loan.jurisdiction, loan.borrower.timezone, cmd.overrides,
                                  cmd.opened_at)
        except ValueError as err:
            raise ApplicationError(str(err), type="RulesUnavailable",
                                   non_retryable=True) from None
        # the audit re-checks this case against exactly these rules (pack, holidays, zone)
        record = {**cmd.compliance, "pack": rules.pack.model_dump(mode="json"),
                  "rules": rules.model_dump(mode="json")}
        try:
            with ledger_errors("opening the case"):
                created = await self._ledger.open_case(cmd.model_copy(
                    update={"compliance": record}))
        except LoanAlreadyClosed as err:
            log.warning("hand-over refused", loan_id=cmd.loan.loan_id,
                        workflow_id=cmd.workflow_id, case_id=cmd.case_id, reason=str(err))
            raise ApplicationError(str(err), type="LoanAlreadyClosed",
                                   non_retryable=True) from err
        log.info("case opened" if created else "case already open", loan_id=cmd.loan.loan_id,
                 workflow_id=cmd.workflow_id, case_id=cmd.case_id, policy=cmd.policy)
        result, failure = self._first_score(cmd)
        entries = list(cmd.entries)
        if cmd.score is not None and cmd.scored_at is not None:
            entries += scoring_entries(cmd.score_event, cmd.segment, cmd.scored_at, result,
                                       failure)
        if entries:
            await self.record_entries(RecordEntries(
                case_id=cmd.case_id, workflow_id=cmd.workflow_id, loan_id=loan.loan_id,
                entries=entries, outstanding=cmd.outstanding))
        with ledger_errors("reading the borrower's consents"):
            consents = await InboundStore(self._ledger.engine).standing(
                loan.borrower.borrower_id)
        return HandedOver(created=created, rules=rules, score=result, score_failure=failure,
                          consents=consents)

    def _first_score(self, cmd: OpenLoan) -> tuple[ScoreResult | None, str]:
        """The scorer's answer, or why there is none (after SCORE_ATTEMPTS attempts when it
        is unreachable: earlier ones fail, so Temporal retries with back-off)."""
        if cmd.score is None:
            return None, ""
        try:
            return score(self._scorer, cmd.score), ""
        except ApplicationError as err:
            if not err.non_retryable and activity.info().attempt < SCORE_ATTEMPTS:
                raise
            log.warning("hand-over not scored", loan_id=cmd.loan.loan_id, error=err.message)
            return None, err.message

    @activity.defn(name=RECORD_ENTRIES)
    async def record_entries(self, cmd: RecordEntries) -> int:
        """The entries, then the ops alerts raised with them: one activity for both. Only
        entries new to the ledger are counted in the metrics (a retry counts none twice)."""
        with ledger_errors("recording ledger entries"):
            new = await self._ledger.record_new_entries(cmd) if cmd.entries else []
        business_metrics.entries_written(new)
        written = len(new)
        for alert in cmd.alerts:
            await self.alert_ops(alert)
        log.info("ledger entries recorded", loan_id=cmd.loan_id, workflow_id=cmd.workflow_id,
                 new=written, batch=len(cmd.entries),
                 kinds=[getattr(e, "event", e.kind) for e in cmd.entries],
                 attempt=activity.info().attempt)
        return written

    @activity.defn(name=ALERT_OPS)
    async def alert_ops(self, alert: OpsAlert) -> bool:
        """An alert alone (runs from before alerts went with `record_entries`)."""
        with ledger_errors("recording an ops alert"):
            created = await self._ledger.record_alert(alert)
        if created:
            business_metrics.alert_raised()
        log.warning("ops alert", loan_id=alert.loan_id, workflow_id=alert.workflow_id,
                    subject=alert.subject, new=created)
        return created

"""Ledger-writing activities. Every write is keyed, so retries are harmless."""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duecourse.activities.errors import ledger_errors
from duecourse.domain.case.reopening import LoanAlreadyClosed
from duecourse.domain.rules import OpenedCase
from duecourse.snapshots import take_snapshot
from duecourse.store.ledger import Ledger
from duecourse.temporal.contracts import (
    ALERT_OPS,
    OPEN_LOAN,
    RECORD_ENTRIES,
    OpenLoan,
    OpsAlert,
    RecordEntries,
)

log = structlog.get_logger(__name__)


class LedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @activity.defn(name=OPEN_LOAN)
    async def open_loan(self, cmd: OpenLoan) -> OpenedCase:
        """Open the case and take the rules snapshot it runs on (its pack is also what the
        ledger keeps for the audit). A loan whose closed case covers this due date fails
        for good (`LoanAlreadyClosed`), since retrying can never make it startable."""
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
        return OpenedCase(created=created, rules=rules)

    @activity.defn(name=RECORD_ENTRIES)
    async def record_entries(self, cmd: RecordEntries) -> int:
        with ledger_errors("recording ledger entries"):
            written = await self._ledger.record_entries(cmd)
        log.info("ledger entries recorded", loan_id=cmd.loan_id, workflow_id=cmd.workflow_id,
                 new=written, batch=len(cmd.entries),
                 kinds=[getattr(e, "event", e.kind) for e in cmd.entries],
                 attempt=activity.info().attempt)
        return written

    @activity.defn(name=ALERT_OPS)
    async def alert_ops(self, alert: OpsAlert) -> bool:
        with ledger_errors("recording an ops alert"):
            created = await self._ledger.record_alert(alert)
        log.warning("ops alert", loan_id=alert.loan_id, workflow_id=alert.workflow_id,
                    subject=alert.subject, new=created)
        return created

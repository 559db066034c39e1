"""Ledger-writing activities. Every write is keyed, so retries are harmless."""

from __future__ import annotations

import structlog
from temporalio import activity

from duecourse.domain.commands import (
    ALERT_OPS,
    OPEN_LOAN,
    RECORD_ENTRIES,
    OpenLoan,
    OpsAlert,
    RecordEntries,
)
from duecourse.store.ledger import Ledger

log = structlog.get_logger(__name__)


class LedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @activity.defn(name=OPEN_LOAN)
    async def open_loan(self, cmd: OpenLoan) -> bool:
        created = await self._ledger.open_case(cmd)
        log.info("case opened" if created else "case already open", loan_id=cmd.loan.loan_id,
                 workflow_id=cmd.workflow_id, case_id=cmd.case_id, policy=cmd.policy)
        return created

    @activity.defn(name=RECORD_ENTRIES)
    async def record_entries(self, cmd: RecordEntries) -> int:
        written = await self._ledger.record_entries(cmd)
        log.info("ledger entries recorded", loan_id=cmd.loan_id, workflow_id=cmd.workflow_id,
                 new=written, batch=len(cmd.entries),
                 kinds=[getattr(e, "event", e.kind) for e in cmd.entries],
                 attempt=activity.info().attempt)
        return written

    @activity.defn(name=ALERT_OPS)
    async def alert_ops(self, alert: OpsAlert) -> bool:
        created = await self._ledger.record_alert(alert)
        log.warning("ops alert", loan_id=alert.loan_id, workflow_id=alert.workflow_id,
                    subject=alert.subject, new=created)
        return created

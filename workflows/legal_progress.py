"""What the loan does with each report of its LegalCase child (`legal_progress`).

`LEGAL_PROGRESS` maps the child's event names to the handler of each; the handlers call
the domain and hand the entries to `_apply`. Deterministic: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from duecourse.domain.case.aggregate import Collection
    from duecourse.domain.case.state import LegalPhase
    from duecourse.domain.entries import LedgerEntry
    from duecourse.domain.legal import litigation
    from duecourse.domain.legal.case import LegalProgress
    from duecourse.domain.work import tasks
    from duecourse.domain.work.queue import TaskKind


class LegalProgressReports:
    """Mixed into LoanCollectionWorkflow, which provides the state, `_apply`,
    `_outstanding_text` and (through Supervision) `_queue_alert`."""

    _c: Collection

    def _apply(self, entries: list[LedgerEntry],
               write: bool = True) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    def _queue_alert(self, subject: str, body: str) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    def _outstanding_text(self) -> str:  # pragma: no cover - see workflow
        raise NotImplementedError

    def _demand_asked(self, progress: LegalProgress, now: datetime) -> None:
        litigation.demand_requested(self._c)
        self._apply([])

    def _approval_requested(self, progress: LegalProgress, now: datetime) -> None:
        c = self._c
        why = ("cure period ended unpaid" if c.state.legal.phase is LegalPhase.CURE_PERIOD
               else "demand letter could not be delivered")
        entries = c.cure_expired(now, why)
        entries += tasks.open_task(c, TaskKind.APPROVE_LEGAL, litigation.LEGAL_REFERRAL, now,
                                   assignee=c.policy.tasks.supervisor_queue)[1]
        self._queue_alert("Legal referral awaiting supervisor approval",
                          f"{why}; {self._outstanding_text()} unpaid.")
        self._apply(entries)

    def _approval_overdue(self, progress: LegalProgress, now: datetime) -> None:
        c = self._c
        entries = c.approval_overdue(now)
        self._queue_alert(
            f"Legal approval overdue (escalation {c.state.legal.approval_escalations})",
            f"No supervisor decision since {c.state.legal.phase_at}; "
            f"{self._outstanding_text()} unpaid.")
        self._apply(entries)

    def _referred(self, progress: LegalProgress, now: datetime) -> None:
        self._apply(litigation.referred(self._c, progress.case, now))

    def _referral_failed(self, progress: LegalProgress, now: datetime) -> None:
        c, ref = self._c, progress.case.case_ref
        task, entries = tasks.open_task(c, TaskKind.REFER_CASE, ref, now,
                                        assignee=c.policy.tasks.supervisor_queue,
                                        note=progress.detail)
        self._queue_alert(f"Legal referral of {ref} failed: task {task.task_id}",
                          progress.detail)
        self._apply([*entries, c.record_event("legal_referral_failed", now, case=ref,
                                              detail=progress.detail, task=task.task_id)])

    def _case_closed(self, progress: LegalProgress, now: datetime) -> None:
        c = self._c
        self._apply(litigation.case_closed(c, progress.case, now))
        outcome = progress.case.outcome
        if outcome in ("paid", "settled") and not c.state.is_closed:
            # the money itself arrives as payments; until then someone must look
            self._queue_alert(
                f"Legal case {progress.case.case_ref} closed as {outcome}",
                f"{self._outstanding_text()} still outstanding: report the payments "
                "received through the legal partner so the loan can close.")


LEGAL_PROGRESS: dict[str, Callable[[LegalProgressReports, LegalProgress, datetime], None]] = {
    "send_demand": LegalProgressReports._demand_asked,
    "approval_requested": LegalProgressReports._approval_requested,
    "approval_overdue": LegalProgressReports._approval_overdue,
    "referred": LegalProgressReports._referred,
    "referral_failed": LegalProgressReports._referral_failed,
    "closed": LegalProgressReports._case_closed,
}

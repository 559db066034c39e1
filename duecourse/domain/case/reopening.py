"""Whether a hand-over may open a new collection case: a closed loan stays closed.

A borrower who paid (or whose case was settled, written off or cancelled) must not be
contacted again because a platform re-sent the same loan. Only a new delinquency - a due
date after the closed case's - opens a fresh case. Pure: the caller reads the ledger.
"""

from __future__ import annotations

from datetime import date

from pydantic import AwareDatetime, BaseModel, ConfigDict

from duecourse.domain.calendar import local_date
from duecourse.domain.case.state import Outcome
from duecourse.domain.loan import LoanIntake


class ClosedCase(BaseModel):
    """A collection case the ledger records as ended, with the due date it collected."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    loan_id: str
    due_date: date
    outcome: Outcome
    closed_at: AwareDatetime


class LoanAlreadyClosed(ValueError):
    """A hand-over of a closed loan's same (or an earlier) delinquency; the message is the
    reason shown to the platform."""


def reopen_problem(closed: ClosedCase | None, loan: LoanIntake) -> str | None:
    """Why `loan` must not start collection given its last closed case, or None if it may.

    `closed` should be the loan's closed case with the latest due date, so comparing with
    it alone decides for all of them. The close date is shown in the borrower's zone, the
    calendar every borrower-facing date uses.
    """
    if closed is None or loan.due_date > closed.due_date:
        return None
    closed_on = local_date(closed.closed_at, loan.borrower.timezone)
    return f"already closed: {closed.outcome.value} on {closed_on.isoformat()}"

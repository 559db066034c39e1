"""How a Temporal activity, child or workflow ended, as a short sentence for the ledger and
ops: what ended it, never a stack trace (failures can carry borrowers' data)."""

from __future__ import annotations

from temporalio.client import WorkflowFailureError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TerminatedError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError


def failure_text(err: BaseException | None) -> str:
    """`terminated`, `timed out`, `cancelled`, or the application error's message."""
    cause = err.cause if isinstance(err, ActivityError | ChildWorkflowError |
                                    WorkflowFailureError) else err
    if isinstance(cause, TerminatedError):
        return "terminated"
    if isinstance(cause, TemporalTimeoutError):
        return "timed out"
    if isinstance(cause, CancelledError):
        return "cancelled"
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or err or "failed") or type(err).__name__

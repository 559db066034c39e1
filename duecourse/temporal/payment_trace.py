"""A payment reference's fate, read from the loan's workflow history.

The history needs no worker and outlives the run, so it settles what an RPC could not: a
payment whose reply was lost (a client `Timeout expired` after the server recorded the
signal), one no worker has applied yet, or a retry of one that closed the loan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from duecourse.domain.case.commands import PaymentReport
from duecourse.domain.entries import EventRecorded, PaymentRecorded, StageChanged
from duecourse.domain.money import Money
from duecourse.temporal.contracts import RECORD_ENTRIES, CollectionInput, RecordEntries


class PaymentFate(StrEnum):
    """What became of a payment reference, as the loan's workflow history tells it."""

    APPLIED = "applied"  # the workflow applied it: the balance went down by it
    RECEIVED = "received"  # in the history, but no worker has applied it yet
    REFUSED = "refused"  # the workflow saw it and did not apply it (the reason says why)
    ABSENT = "absent"  # not in the history: it never reached the loan


@dataclass(frozen=True)
class PaymentTrace:
    """One payment reference in the loan's workflow history.

    Read from the history, which the server keeps for running and closed workflows alike,
    so it answers while no worker runs - the moment a payment's fate is in doubt.
    """

    loan_id: str
    reference: str
    fate: PaymentFate
    currency: str  # the loan's
    reports: int = 0  # how often the reference was reported to this run
    received_at: datetime | None = None  # its first report
    recorded: PaymentRecorded | None = None  # what the workflow recorded when it applied it
    refusal: str = ""  # why the workflow did not apply it
    outcome: str | None = None  # how the collection ended, once it has (PAID, ...)
    close_reason: str = ""
    ended: str | None = None  # the run has closed (completed, terminated, ...): no more input

    def sentence(self) -> str:
        """The fate in one sentence, for a person or an API answer."""
        ref, loan = self.reference, self.loan_id
        if self.fate is PaymentFate.APPLIED and self.recorded is not None:
            r = self.recorded
            return (f"payment {ref} was applied to loan {loan} at "
                    f"{r.occurred_at.isoformat(timespec='seconds')}: "
                    f"{Money(amount=r.amount, currency=r.currency)}, outstanding after it "
                    f"{Money(amount=r.outstanding_after, currency=r.currency)}")
        if self.fate is PaymentFate.APPLIED:
            return f"payment {ref} was applied to loan {loan} (before its history was renewed)"
        if self.fate is PaymentFate.RECEIVED:
            since = f" at {self.received_at.isoformat(timespec='seconds')}" \
                if self.received_at else ""
            return (f"payment {ref} was received for loan {loan}{since} and is applied as "
                    "soon as a worker processes it")
        if self.fate is PaymentFate.REFUSED:
            return f"payment {ref} was not applied to loan {loan}: {self.refusal}"
        return f"loan {loan} has no record of payment {ref}"


@dataclass(frozen=True)
class PaymentOutcome:
    """The answer to reporting a payment: `accepted` (it reached the loan) or `duplicate`
    (the reference was applied already; nothing changed) - the API's 202 and 200."""

    reference: str
    status: Literal["accepted", "duplicate"]
    fate: PaymentFate
    detail: str
    trace: PaymentTrace | None = None  # when the history was read to find out
    recovered_from: str | None = None  # the lost RPC answer that the history replaced


class PaymentUnconfirmed(RPCError):
    """Reporting a payment failed in a way that does not say whether it arrived, and the
    history then showed it absent (`received` False: safe to retry) or could not be read
    (`received` None). An RPCError, so callers that treat Temporal trouble as such still
    do; the message is the whole truth in a sentence."""

    def __init__(self, message: str, cause: RPCError, received: bool | None) -> None:
        super().__init__(message, cause.status, cause.raw_grpc_status)
        self.received = received


AMBIGUOUS = frozenset({
    RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.UNKNOWN, RPCStatusCode.INTERNAL, RPCStatusCode.ABORTED,
    RPCStatusCode.RESOURCE_EXHAUSTED})
"""RPC failures after which a signal may or may not have been recorded: the client's
timeout ("Timeout expired") or a dropped connection can come after the server wrote it."""
HISTORY_TIMEOUT = timedelta(seconds=10)
SETTLE_SECONDS = 2.0
"""After an ambiguous failure, how long a signal still on its way may take to show in the
history before it counts as not received."""


_ENDED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
}


def _refusal(entry: EventRecorded) -> str | None:
    """Why the workflow's entry about a payment means it was not applied ('' for a
    duplicate, which was applied before; None for any other entry)."""
    details = entry.details
    if entry.event == "payment_duplicate_ignored":
        return ""
    if entry.event == "payment_rejected":
        return str(details.get("reason") or "the workflow rejected it")
    if entry.event == "payment_after_close":
        return (f"it arrived after the loan had closed ({details.get('outcome')}); "
                f"{details.get('action') or 'review for refund'}")
    return None


async def trace_payment(client: Client, loan_id: str, reference: str,
                 events: list[Any]) -> PaymentTrace:
    """Read one payment reference out of a run's history events.

    The run's input carries the references applied by earlier runs (continue-as-new); its
    `report_payment` signals are the reports; the workflow writes what it did with each
    to the ledger through `record_entries`, whose inputs are in the history too.
    """
    decode = client.data_converter.decode
    currency, carried, reports, settled = "", False, [], 0
    recorded: PaymentRecorded | None = None
    refusal, outcome, close_reason, ended = "", None, "", None
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            start = (await decode(attrs.input.payloads, [CollectionInput]))[0]
            currency = start.loan.currency
            carried = start.state is not None and reference in start.state.payment_refs
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name == "report_payment":
                report = (await decode(attrs.input.payloads, [PaymentReport]))[0]
                if report.reference == reference:
                    reports.append(event.event_time.ToDatetime(tzinfo=UTC))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name != RECORD_ENTRIES:
                continue
            batch = (await decode(attrs.input.payloads, [RecordEntries]))[0]
            for entry in batch.entries:
                if isinstance(entry, PaymentRecorded) and entry.reference == reference:
                    recorded, settled = recorded or entry, settled + 1
                elif isinstance(entry, EventRecorded) and \
                        entry.details.get("reference") == reference and \
                        (why := _refusal(entry)) is not None:
                    settled += 1
                    refusal = why or refusal
                elif isinstance(entry, StageChanged) and entry.outcome:
                    outcome, close_reason = entry.outcome, entry.reason
        elif kind in _ENDED:
            ended = _ENDED[kind]
    if recorded is not None or carried:
        fate = PaymentFate.APPLIED
    elif len(reports) > settled and ended is None:
        fate = PaymentFate.RECEIVED
    elif refusal:
        fate = PaymentFate.REFUSED
    elif reports:
        fate, refusal = PaymentFate.REFUSED, f"the collection {ended} before it was applied"
    else:
        fate = PaymentFate.ABSENT
    return PaymentTrace(loan_id=loan_id, reference=reference, fate=fate, currency=currency,
                        reports=len(reports), received_at=reports[0] if reports else None,
                        recorded=recorded, refusal=refusal, outcome=outcome,
                        close_reason=close_reason, ended=ended)

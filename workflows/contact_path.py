"""The collection workflow's contact path: ask the compliance engine, then one fenced send.

A send runs as a cancellable activity. While it is in flight, every handler that records a
stop fact (payment in full, dispute, hold, cease, attorney, opt-out of its channel,
bankruptcy, death, cancellation) withdraws it; the activity also asks the workflow, just
before calling the channel, whether it still may go (`send_clearance`), so a stop fact
that arrived even a moment earlier fences it. Deterministic: no I/O, no clock but
`workflow.now()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from duecourse.channels.rate_limits import SEND_QUEUE_PER_CHANNEL, channel_queue
    from duecourse.domain.actor import SYSTEM
    from duecourse.domain.case.aggregate import Collection
    from duecourse.domain.compliance import Decision, ProposedContact, Purpose, Verdict
    from duecourse.domain.compliance.engine import DECISION_VALIDITY, blocker
    from duecourse.domain.contact.channels import channel_options, falls_back
    from duecourse.domain.entries import ComplianceDecided, ContactDelivered, LedgerEntry
    from duecourse.domain.policy import Channel, ContactStep
    from duecourse.temporal.contracts import SEND_MESSAGE, SETTLE_SEND, MessageSent, SendMessage

SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                         maximum_interval=timedelta(minutes=1), maximum_attempts=0,
                         non_retryable_error_types=["TemplateError", "StopFact",
                                                    "WindowClosed", "ChannelGaveUp"])
"""A send retries while it may still go: the activity itself ends it when its lawful
window closes, a stop fact fences it, or the channel has failed its attempts."""

SETTLE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                           maximum_interval=timedelta(seconds=30), maximum_attempts=0)
"""Settling waits out the withdrawn attempt's lease (about a minute at most) and a ledger
that is down."""

SETTLE_WITHDRAWN_SENDS = "settle-withdrawn-sends"
"""Patch: a withdrawn send whose attempt never answered is settled at the channel
(histories from before it replay without the settle activity)."""

PERMANENT_SEND_ERRORS = ("TemplateError", "ChannelGaveUp", "ChannelError", "LedgerDataError")

Status = Literal["sent", "deferred", "blocked", "failed", "stopped", "expired", "skipped"]

TIME_BARRED = "the debt is time-barred: no wording that speaks of legal action"
"""Why a step whose every template speaks of legal action is skipped on a time-barred debt
(the pack's `time_barred` reference cites the law, e.g. 12 CFR 1006.26(b))."""


@dataclass
class InFlight:
    """The one send the workflow is awaiting (the loop awaits one thing at a time)."""

    key: str
    channel: Channel
    address: str
    purpose: Purpose
    handle: workflow.ActivityHandle[MessageSent]
    stopped: str = ""  # why the workflow withdrew it


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str
    at: datetime | None = None  # sent: when the channel was called


class ContactPath:
    """Mixed into LoanCollectionWorkflow, which provides the state, `_apply` and `_write`
    (and, through Supervision, `_queue_alert`). An allowed decision is recorded by the
    send itself (with its claim, before the channel call), so a sent contact costs no
    ledger write of its own; one that did not go out is written by the loop."""

    _c: Collection
    _in_flight: InFlight | None

    def _apply(self, entries: list[LedgerEntry],
               write: bool = True) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    def _write(self, entries: list[LedgerEntry]) -> None:  # pragma: no cover - see workflow
        raise NotImplementedError

    async def _contact(self, step: ContactStep, purpose: Purpose,
                       extra: dict[str, str] | None = None) -> Outcome:
        """Ask the compliance engine, then send. An opted-out or unreachable channel falls
        back to the policy's next channel (within the segment's channels) when the step
        has a borrower template written for it; every engine decision is recorded. On a
        time-barred debt a channel whose template speaks of legal action is never tried
        (the policy loader marked them): the step falls back to one whose template does
        not, and is skipped when it has none."""
        c = self._c
        options = channel_options(c, step, purpose, workflow.now())
        notes: list[str] = []
        for option in options.items:
            if isinstance(option, str):  # a channel passed over, and why
                notes.append(option)
                continue
            channel, template, address = option.channel, option.template, option.address
            now = workflow.now()
            decision = c.decide_contact(channel, address, now, purpose)
            entries = c.record_decision(step.name, channel, address, decision, purpose)
            allowed = decision.verdict is Verdict.ALLOWED
            self._apply(entries, write=not allowed)  # an allowed one: the send records it
            if decision.verdict is Verdict.DEFERRED:
                return Outcome("deferred", decision.detail)
            if decision.verdict is Verdict.BLOCKED:
                notes.append(f"{channel} blocked ({decision.code}: {decision.detail})")
                if falls_back(decision):  # try the next channel
                    continue
                return Outcome("blocked", "; ".join(notes))
            decided = entries[0]
            assert isinstance(decided, ComplianceDecided)
            outcome = await self._send(step, channel, template, address, purpose,
                                       extra or {}, decided, decision)
            if outcome.status != "sent":  # it may have stopped before claiming (keyed)
                self._write(entries)
            else:
                c.contact_made(channel, address, outcome.at or now, purpose)
                if notes:
                    outcome = Outcome("sent", "; ".join([*notes, outcome.detail]), outcome.at)
            return outcome
        if options.time_barred_only:
            return Outcome("skipped", f"{TIME_BARRED} ({c.pack.ref('time_barred')})")
        return Outcome("blocked", "; ".join(notes) or "no channel available")

    async def _send(self, step: ContactStep, channel: Channel, template: str, address: str,
                    purpose: Purpose, extra: dict[str, str], decided: ComplianceDecided,
                    decision: Decision) -> Outcome:
        c = self._c
        now = workflow.now()
        key = f"{c.state.case_id}:contact:{c.state.visit.visit}:{step.name}"
        request = SendMessage(
            idempotency_key=key, case_id=c.state.case_id,
            workflow_id=workflow.info().workflow_id, loan_id=c.loan.loan_id,
            stage=c.state.stage, step=step.name, channel=channel, template=template,
            language=c.loan.borrower.language, recipient=address, purpose=purpose,
            jurisdiction=c.loan.jurisdiction, scheduled_for=now,
            not_after=decision.valid_until or now + DECISION_VALIDITY, decision=decided,
            context=self._message_values(now, extra), time_barred=c.time_barred(now),
            link_days=c.policy.portal_link_days)
        handle = workflow.start_activity(
            SEND_MESSAGE, request, result_type=MessageSent,
            task_queue=channel_queue(workflow.info().task_queue, channel)
            if workflow.patched(SEND_QUEUE_PER_CHANNEL) else None,
            start_to_close_timeout=timedelta(seconds=90),
            heartbeat_timeout=timedelta(seconds=10), retry_policy=SEND_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"{channel} {template} ({step.name})")
        flight = InFlight(key=key, channel=channel, address=address, purpose=purpose,
                          handle=handle)
        self._in_flight = flight
        try:
            try:
                result = await handle
            except ActivityError as err:
                settled = await self._settle(request, flight, err)
                if settled is None:
                    return self._send_failed(step, flight, err)
                result = settled
        finally:
            self._in_flight = None
        if not result.recorded and result.sent_at is not None:
            self._apply([ContactDelivered(
                key=f"contact:{c.state.visit.visit}:{step.name}", occurred_at=result.sent_at,
                actor=SYSTEM, provider_message_id=result.message_id,
                fenced_at=result.fenced_at or result.sent_at, sent_at=result.sent_at)])
        return Outcome("sent", f"{channel} message {result.message_id}",
                       result.fenced_at or now)

    async def _settle(self, request: SendMessage, flight: InFlight,
                      err: ActivityError) -> MessageSent | None:
        """A send withdrawn by a stop fact may have reached the channel in an attempt that
        then died or never heard back (the server ends it unanswered once cancelled): ask
        the channel, so a message that went out counts as a contact made and its row is
        settled. None when it did not go out."""
        withdrawn = flight.stopped or isinstance(err.cause, CancelledError)
        if not withdrawn or not workflow.patched(SETTLE_WITHDRAWN_SENDS):
            return None
        settled = await workflow.execute_activity(
            SETTLE_SEND, request, result_type=MessageSent | None,  # type: ignore[arg-type]
            start_to_close_timeout=timedelta(seconds=60), retry_policy=SETTLE_RETRY,
            summary=f"settle {request.channel} {request.template} ({request.step})")
        return settled if settled is not None and settled.status == "sent" else None

    def _send_failed(self, step: ContactStep, flight: InFlight, err: ActivityError) -> Outcome:
        cause = err.cause
        if flight.stopped or isinstance(cause, CancelledError):
            return Outcome("stopped", f"not sent: {flight.stopped or 'withdrawn'}")
        if isinstance(cause, ApplicationError):
            if cause.type == "StopFact":
                return Outcome("stopped", cause.message)
            if cause.type == "WindowClosed":
                return Outcome("expired", cause.message)
            if cause.type in PERMANENT_SEND_ERRORS:
                self._queue_alert(  # type: ignore[attr-defined]
                    f"{step.template} to the borrower failed ({step.name})", cause.message)
            message = cause.message
        else:
            message = str(cause or err)
        workflow.logger.warning("contact failed", extra={"step": step.name, "error": message})
        return Outcome("failed", f"send failed: {message}")

    def _message_values(self, now: datetime, extra: dict[str, str]) -> dict[str, str]:
        c = self._c
        return {"borrower_name": c.loan.borrower.name, "loan_id": c.loan.loan_id,
                "amount": self._outstanding_text(), "due_date": c.loan.due_date.isoformat(),
                "days_past_due": str(c.dpd(now)), "cure_days": str(c.cure_period.days),
                **extra}

    def _outstanding_text(self) -> str:  # pragma: no cover - see workflow
        raise NotImplementedError

    # ------------------------------------------------------------------ the fence
    def _stop_reason(self, channel: Channel, address: str, purpose: Purpose,
                     at: datetime) -> str:
        """Why a contact may not go out at `at` whatever the time of day ('' = it may)."""
        c = self._c
        if c.state.is_closed:
            return f"the loan is closed ({c.state.outcome})"
        found = blocker(ProposedContact(channel=channel, at=at, address=address,
                                        purpose=purpose), c.context())
        return f"{found.code}: {found.detail}" if found else ""

    def _fence_in_flight(self) -> None:
        """After any change of state: withdraw the send in flight if it may not go now."""
        flight = self._in_flight
        if flight is None or flight.stopped:
            return
        reason = self._stop_reason(flight.channel, flight.address, flight.purpose,
                                   workflow.now())
        if reason:
            flight.stopped = reason
            flight.handle.cancel()

    def _clearance(self, key: str, channel: Channel, address: str, purpose: Purpose,
                   at: datetime) -> str:
        flight = self._in_flight
        if flight is None or flight.key != key:
            return "this send is no longer awaited by its workflow"
        if flight.stopped:
            return flight.stopped
        return self._stop_reason(channel, address, purpose, max(at, workflow.now()))

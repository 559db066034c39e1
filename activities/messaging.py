"""`send_message`: one fenced, recorded send.

In order, each attempt:
1. renders the message (a template bug is permanent: non-retryable);
2. claims the message's ledger row, recording the compliance decision with it, under a
   lease - a sent row short-circuits a retry or a reset, a live lease held by another
   attempt makes this one wait (no overlapping attempts);
3. refuses to go on after `not_after`, the end of the lawful window it was decided for;
4. asks its workflow whether the contact may still go out (`send_clearance` query: a
   payment in full, a dispute, a hold, a cease request, an opt-out of this channel...
   that arrived meanwhile stops it) - again right before the channel call, accepting only
   an answer fresher than half a second, so a send delayed by a starved process still
   learns of a stop that came meanwhile;
5. counts one call to the channel on the row (ledger and fence errors never count) and
   calls the channel within the lease, shielded from cancellation so a call that started
   is always seen through and recorded;
6. records the result. If the ledger is down at that moment, the result goes back to the
   workflow (`recorded=False`), which writes it: an accepted message is never unrecorded.
The idempotency key travels to the channel, so a provider that honours it never sends
twice even when an attempt dies between its call and its record. An attempt that finds an
earlier one called the channel and never answered first asks the channel whether it took
the message (`Channel.find`); `settle_send` asks the same for a send the workflow withdrew
while its attempt was away, so a message that went out is recorded as sent, never left
claimed or in doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from temporalio import activity
from temporalio.client import WorkflowQueryFailedError
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError

from duecourse.activities.clock import activity_clock
from duecourse.activities.errors import ledger_errors
from duecourse.activities.heartbeat import heartbeating
from duecourse.channels import UNKNOWABLE, Channel, ChannelError, OutgoingMessage, Sighting
from duecourse.channels.router import as_router
from duecourse.inbound.store import InboundStore
from duecourse.observability import business_metrics
from duecourse.portal.links import PortalLinks
from duecourse.store.ledger import Ledger
from duecourse.store.sends import DONE, Claim, LeaseLost, SendInFlight, SendLedger
from duecourse.templates import TemplateError, render
from duecourse.templates.html import html_body
from duecourse.templates.locale_format import localised
from duecourse.temporal.contracts import (
    SEND_CLEARANCE,
    SEND_MESSAGE,
    SETTLE_SEND,
    MessageSent,
    SendClearance,
    SendMessage,
)

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)
"""How long a claim keeps other attempts out; longer than the fence plus a channel call."""
CHANNEL_TIMEOUT = 20.0
"""Seconds a channel call may take; a send starts one only with this much lease and lawful
window left."""
QUERY_TIMEOUT = timedelta(seconds=10)
FRESH = timedelta(milliseconds=500)
"""How old the workflow's last answer may be when the channel is called."""
LAST_WORD_TRIES = 5
RECORD_WITHIN = 15.0
"""Seconds an attempt spends recording an accepted message before it hands the result to
its workflow instead (well inside the attempt's start-to-close timeout)."""


def stopped(reason: str) -> ApplicationError:
    """A send a stop fact withdrew: the workflow's expected answer, not a fault - benign,
    so the worker logs it without a traceback."""
    return ApplicationError(f"not sent: {reason}", type="StopFact", non_retryable=True,
                            category=ApplicationErrorCategory.BENIGN)


class MessagingActivities:
    def __init__(self, ledger: Ledger, channel: Channel, lender_name: str,
                 lender_contact: str, portal: PortalLinks | None = None) -> None:
        self._sends = SendLedger(ledger)
        self._inbound = InboundStore(ledger.engine)
        self._channels = as_router(channel)
        self._lender = {"lender_name": lender_name, "lender_contact": lender_contact}
        self._portal = portal  # the borrower's page link in each message (None: no key)

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, req: SendMessage) -> MessageSent:
        now = activity_clock()
        owner = f"{activity.info().attempt}:{uuid.uuid4().hex[:12]}"
        bound = log.bind(loan_id=req.loan_id, workflow_id=req.workflow_id, stage=req.stage,
                         step=req.step, channel=req.channel, attempt=activity.info().attempt)
        try:
            values = {**self._lender, **req.context}
            if req.channel == "email":  # an email reads money and dates as its locale does
                values = localised(values, req.language)
            rendered = render(req.template, req.language, values,
                              jurisdiction=req.jurisdiction, channel=req.channel,
                              time_barred=req.time_barred)
            if self._portal is not None:
                rendered = self._portal.add_link(rendered, req, values)
        except TemplateError as err:
            raise ApplicationError(str(err), type="TemplateError", non_retryable=True) from None
        async with heartbeating():
            try:
                with ledger_errors("claiming the send"):
                    try:
                        claim = await self._sends.claim(req, rendered.subject, rendered.body,
                                                        rendered.language, owner, now(), LEASE)
                    except SendInFlight as err:
                        raise ApplicationError(str(err), type="SendInFlight") from None
                if not claim.ours:
                    return _final(claim, bound)
                found = await self._found(req, now) if claim.channel_attempts else None
                sent = found or await self._deliver(req, owner, claim, now,
                                                    rendered.subject, rendered.body)
            except asyncio.CancelledError:  # the workflow withdrew it before the channel
                await asyncio.shield(self._release(req, owner, "cancelled",
                                                   "withdrawn by its workflow"))
                raise
        business_metrics.message_sent(req.channel)  # a retry finding it sent returns above
        bound.info("message sent", message_id=sent.message_id, via=sent.via,
                   recorded=sent.recorded)
        return sent

    @activity.defn(name=SETTLE_SEND)
    async def settle_send(self, req: SendMessage) -> MessageSent | None:
        """Whether a send the workflow withdrew went out after all: its attempt may have
        called the channel and then died (or never heard back). Waits out that attempt's
        lease (SendInFlight, retried), then asks the channel. Returns the message when it
        was accepted (recorded as sent), None when it was not (the row is released:
        cancelled, or in doubt when the channel cannot tell)."""
        now = activity_clock()
        owner = f"settle:{uuid.uuid4().hex[:12]}"
        with ledger_errors("settling a withdrawn send"):
            try:
                claim = await self._sends.take_over(req.idempotency_key, owner, now(), LEASE)
            except SendInFlight as err:
                raise ApplicationError(str(err), type="SendInFlight") from None
        if claim is None or claim.status not in ("claimed", *DONE):
            return None  # never claimed, or released by its attempt: not sent
        if not claim.ours:
            return MessageSent(message_id=claim.provider_message_id or "", status=claim.status,
                               duplicate=True, fenced_at=claim.fenced_at,
                               sent_at=claim.sent_at)
        sighting = await self._sighting(req) if claim.channel_attempts else Sighting(True)
        if sighting.message_id is not None:
            business_metrics.message_sent(req.channel)
            return await self._recognised(req, sighting, now)
        with ledger_errors("releasing a settled send"):
            await self._sends.release(req.idempotency_key, owner, "cancelled",
                                      "withdrawn by its workflow", known_unsent=sighting.known)
        return None

    async def _found(self, req: SendMessage,
                     now: Callable[[], datetime]) -> MessageSent | None:
        """An earlier attempt called the channel and never answered: the message it
        may have sent, if the channel says it took it."""
        sighting = await self._sighting(req)
        return await self._recognised(req, sighting, now) if sighting.message_id else None

    async def _sighting(self, req: SendMessage) -> Sighting:
        try:
            return await asyncio.wait_for(
                self._channels.for_kind(req.channel).find(req.idempotency_key),
                CHANNEL_TIMEOUT)
        except (ChannelError, TimeoutError):
            return UNKNOWABLE  # the channel will recognise the key if it is sent again

    async def _recognised(self, req: SendMessage, sighting: Sighting,
                          now: Callable[[], datetime]) -> MessageSent:
        """Record a message the channel says it accepted under this send's key."""
        assert sighting.message_id is not None
        sent_at = sighting.accepted_at or now()
        via = self._channels.for_kind(req.channel).name
        recorded = await self._record(req, sighting.message_id, None, sent_at, via)
        log.info("message found at the channel after its attempt ended unanswered",
                 loan_id=req.loan_id, step=req.step, message_id=sighting.message_id)
        return MessageSent(message_id=sighting.message_id, status="sent", sent_at=sent_at,
                           recorded=recorded, via=via)

    async def _deliver(self, req: SendMessage, owner: str, claim: Claim,
                       now: Callable[[], datetime], subject: str | None,
                       body: str) -> MessageSent:
        """Steps 3-6 for a claim this attempt holds."""
        await self._within_window(req, owner, now())
        with ledger_errors("checking the address"):
            unreachable = await self._inbound.is_unreachable(str(req.channel), req.recipient)
        if unreachable:  # a provider said so (receipt or hard bounce): never again
            reason = f"the provider reported this {req.channel} address invalid"
            await self._release(req, owner, "failed", reason)
            raise ApplicationError(reason, type="AddressUnreachable", non_retryable=True)
        await self._consented(req, owner)
        await self._fence(req, owner, now())  # early: a stopped send costs no attempt
        with ledger_errors("counting a channel attempt"):
            try:
                calls = await self._sends.count_attempt(req.idempotency_key, owner)
            except LeaseLost as err:
                raise ApplicationError(str(err), type="LeaseLost") from None
        if calls > req.max_channel_attempts:
            reason = f"the {req.channel} channel failed {calls - 1} times"
            await self._release(req, owner, "failed", reason)
            raise ApplicationError(reason, type="ChannelGaveUp", non_retryable=True)
        fenced_at = await self._last_word(req, owner, now)
        await self._within_window(req, owner, fenced_at)  # the call must end inside both
        assert claim.lease_until is not None
        if fenced_at + timedelta(seconds=CHANNEL_TIMEOUT) > claim.lease_until:
            raise ApplicationError("the claim's lease ran short", type="LeaseLost")
        message = OutgoingMessage(idempotency_key=req.idempotency_key, channel=req.channel,
                                  recipient=req.recipient, subject=subject, body=body,
                                  html=html_body(body, req.language, subject or "")
                                  if req.channel == "email" else None,
                                  language=req.language, loan_id=req.loan_id,
                                  case_id=req.case_id, decision=_decision_terms(req))
        adapter = self._channels.for_kind(req.channel)
        message_id = await self._call_channel(req, owner, adapter, message)
        sent_at = now()
        # from here the message is out: see the record through even if cancelled
        record = asyncio.ensure_future(self._record(req, message_id, fenced_at, sent_at,
                                                    adapter.name))
        try:
            recorded = await asyncio.shield(record)
        except asyncio.CancelledError:
            recorded = await record
        return MessageSent(message_id=message_id, status="sent", fenced_at=fenced_at,
                           sent_at=sent_at, recorded=recorded, via=adapter.name)

    async def _within_window(self, req: SendMessage, owner: str, at: datetime) -> None:
        """A channel call started at `at` must end within the decision's lawful window."""
        if at + timedelta(seconds=CHANNEL_TIMEOUT) > req.not_after:
            await self._release(req, owner, "expired", "its lawful window closed")
            raise ApplicationError(
                f"not sent: the window it was allowed in closed at "
                f"{req.not_after.isoformat()}", type="WindowClosed", non_retryable=True)

    async def _consented(self, req: SendMessage, owner: str) -> None:
        """The consent ledger has the last word on the borrower's own channels: a STOP or
        an unsubscribe that reached the ledger while this loan's workflow had not heard
        of it (a hand-over in the same instant) still stops the send."""
        if req.recipient_kind != "debtor":
            return
        with ledger_errors("checking the borrower's consent"):
            withdrawn = await self._inbound.withdrawn_for(req.loan_id, str(req.channel))
        if withdrawn:
            reason = f"the borrower withdrew consent to {req.channel} (consent ledger)"
            await self._release(req, owner, "cancelled", reason)
            raise stopped(reason)

    async def _fence(self, req: SendMessage, owner: str, at: datetime) -> None:
        """Stop here if the workflow says a stop fact arrived."""
        stop = await self._clearance(req, at)
        if stop:
            await self._release(req, owner, "cancelled", stop)
            raise stopped(stop)

    async def _last_word(self, req: SendMessage, owner: str,
                         now: Callable[[], datetime]) -> datetime:
        """Ask the workflow once more, right before the channel call, and accept only a
        fresh answer: one that took longer than FRESH (a starved process, a slow server)
        may predate a stop fact, so ask again. Returns when it was asked - the instant the
        send is ordered against the loan's facts (its `fenced_at`)."""
        for _ in range(LAST_WORD_TRIES):
            asked = now()
            await self._fence(req, owner, asked)
            if now() - asked <= FRESH:
                return asked
        raise ApplicationError("the workflow's last word came too slowly to rely on",
                               type="FenceSlow")

    async def _clearance(self, req: SendMessage, at: datetime) -> str:
        """The workflow's answer: '' to go ahead, else the stop fact. Unanswerable (the
        server or the workflow's worker away) means wait and retry, never send."""
        handle = activity.client().get_workflow_handle(req.workflow_id)
        ask = SendClearance(idempotency_key=req.idempotency_key, channel=req.channel,
                            recipient=req.recipient, purpose=req.purpose, at=at)
        try:
            return await handle.query(SEND_CLEARANCE, ask, result_type=str,
                                      rpc_timeout=QUERY_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError, TimeoutError) as err:
            raise ApplicationError(f"the send's workflow did not answer its last check "
                                   f"({type(err).__name__})", type="FenceUnavailable") from None

    async def _call_channel(self, req: SendMessage, owner: str, adapter: Channel,
                            message: OutgoingMessage) -> str:
        """Call the channel once. A cancellation that arrives meanwhile waits for the call
        (it may have been accepted); a timeout or a 5xx is retried, a 4xx is final."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHANNEL_TIMEOUT  # one deadline, however often cancelled
        call = asyncio.ensure_future(adapter.send(message))
        done: set[asyncio.Future[str]] = set()
        while not done and loop.time() < deadline:
            with contextlib.suppress(asyncio.CancelledError):
                done, _ = await asyncio.wait({call}, timeout=deadline - loop.time())
        if not done:
            call.cancel()
            raise ApplicationError(f"the {req.channel} channel did not answer within "
                                   f"{CHANNEL_TIMEOUT:.0f} s", type="ChannelTimeout")
        try:
            return call.result()
        except ChannelError as err:
            if err.permanent:
                await self._release(req, owner, "failed", str(err))
            raise ApplicationError(str(err), type="ChannelError",
                                   non_retryable=err.permanent) from None

    async def _record(self, req: SendMessage, message_id: str, fenced_at: datetime | None,
                      sent_at: datetime, via: str) -> bool:
        """Record the accepted message, retrying a little (within RECORD_WITHIN seconds in
        all: the attempt must end with its result); False hands it to the workflow."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + RECORD_WITHIN, 0.2
        while loop.time() < deadline:
            try:
                with ledger_errors("recording a sent message"):
                    await asyncio.wait_for(
                        self._sends.record_sent(req, message_id, fenced_at, sent_at, via),
                        max(0.1, deadline - loop.time()))
                return True
            except (ApplicationError, TimeoutError):
                await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
                delay *= 2
        log.warning("sent message not recorded; the workflow records it",
                    loan_id=req.loan_id, step=req.step, message_id=message_id)
        return False

    async def _release(self, req: SendMessage, owner: str, status: str, why: str) -> None:
        """Best effort: a row left claimed is taken over when its lease runs out."""
        with contextlib.suppress(ApplicationError), ledger_errors("releasing a send"):
            await self._sends.release(req.idempotency_key, owner, status, why)


def _decision_terms(req: SendMessage) -> dict[str, str]:
    """The may-contact decision as a provider sees it (a dialer shows its agent why and
    until when the call may be made): its verdict, rule and window, never the recipient."""
    d = req.decision
    terms = {"verdict": d.verdict, "code": d.code, "rule": d.rule, "key": d.key,
             "purpose": d.purpose, "proposed_at": d.proposed_at.isoformat(),
             "valid_until": (d.valid_until or req.not_after).isoformat()}
    return {k: v for k, v in terms.items() if v}


def _final(claim: Claim, bound: structlog.stdlib.BoundLogger) -> MessageSent:
    """What an earlier attempt (or run, before a reset) already did with this message
    under this decision."""
    if claim.status == "failed":
        raise ApplicationError(claim.error or "the send failed earlier",
                               type="ChannelGaveUp", non_retryable=True)
    bound.info("message already sent; not sending again")
    return MessageSent(message_id=claim.provider_message_id or "", status=claim.status,
                       duplicate=True, fenced_at=claim.fenced_at, sent_at=claim.sent_at)

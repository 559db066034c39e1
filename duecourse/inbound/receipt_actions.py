"""Acting on what providers say became of a message: a delivery receipt or a bounce is kept
with the contact attempt it names; an invalid number or address (a failure whose error
says the recipient does not exist, a hard bounce) is marked unreachable - never sent to
again - and reported to the loan as a wrong number, so the failed attempt counts toward
"the debtor is unreachable" in the compliance engine's third-party rules."""

from __future__ import annotations

import contextlib

import structlog

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.policy import Channel
from duecourse.inbound.store import Attempt, InboundStore
from duecourse.temporal.client import CollectionClient, LoanClosed, LoanNotFound

log = structlog.get_logger(__name__)

RECEIPT_STATUSES = ("delivered", "failed", "undelivered", "bounced")

TWILIO_INVALID = frozenset({"21211", "21614", "30005", "30006"})
"""Twilio error codes meaning the number cannot take SMS: invalid 'To', not a mobile
number, unknown destination handset, landline or unreachable carrier."""
GENERIC_INVALID = frozenset({"invalid_number", "invalid_recipient", "unknown_number",
                             "unknown_recipient", "not_mobile", "landline"})
"""The generic profile's error values for a number that does not exist or takes no SMS."""
TWILIO_STATUSES = {"delivered": "delivered", "failed": "failed",
                   "undelivered": "undelivered"}
"""Twilio's final statuses; queued, sending, sent and the like are progress, not a receipt."""


def invalid_recipient(status: str, error: str | None, profile: str) -> bool:
    """Whether a failure says the recipient itself is invalid (not a passing outage)."""
    if status == "delivered" or not error:
        return False
    code = error.strip().lower()
    return code in TWILIO_INVALID if profile == "twilio" else code in GENERIC_INVALID


class ReceiptActions:
    def __init__(self, client: CollectionClient, store: InboundStore) -> None:
        self.client, self.store = client, store

    async def receipt(self, provider_message_id: str, status: str, error: str | None,
                      invalid: bool, source: str) -> str:
        """"recorded", "unmatched" (no attempt of ours has that id) or "duplicate"."""
        attempt = await self.store.attempt(provider_message_id)
        if not await self.store.record_receipt(provider_message_id, status, error, attempt):
            return "duplicate"
        if invalid and attempt is not None:
            await self._once(provider_message_id, status, error, attempt.channel,
                             attempt.recipient, attempt, f"{source}: {status} ({error})")
        log.info("delivery receipt", status=status, source=source,
                 loan_id=attempt.loan_id if attempt else None, matched=attempt is not None)
        return "recorded" if attempt is not None else "unmatched"

    async def bounce(self, message_id: str, recipient: str, kind: str,
                     diagnostic: str) -> str:
        """A bounce; a hard one marks the address (ours on file when the message is
        known, else the recipient the bounce names)."""
        attempt = await self.store.attempt(message_id)
        detail = f"{kind}: {diagnostic}"[:1000]
        if not await self.store.record_receipt(message_id, "bounced", detail, attempt):
            return "duplicate"
        if kind == "hard":
            address = attempt.recipient if attempt is not None else recipient
            await self._once(message_id, "bounced", detail, "email", address, attempt,
                             f"hard bounce: {diagnostic}")
        log.info("email bounce", kind=kind, matched=attempt is not None,
                 loan_id=attempt.loan_id if attempt else None)
        return "recorded" if attempt is not None else "unmatched"

    async def _once(self, message_id: str, status: str, error: str | None, channel: str,
                    address: str, attempt: Attempt | None, reason: str) -> None:
        """Act on a receipt this request recorded first (a concurrent twin found it and
        stopped); acting failed: forget it, so the provider's retry acts again."""
        try:
            await self._unreachable(channel, address, attempt, reason)
        except BaseException:
            await self.store.forget_receipt(message_id, status, error)
            raise

    async def _unreachable(self, channel: str, address: str, attempt: Attempt | None,
                           reason: str) -> None:
        """Mark first, then report to the loan: the mark's insert lets one request report
        (two receipts about one address, at once, report once); a report that failed takes
        the mark back so the provider's retry reports again."""
        loan_id = attempt.loan_id if attempt else None
        if not await self.store.mark_unreachable(channel, address, reason, loan_id):
            return
        if attempt is None:
            return
        report = ContactOutcomeReport(
            channel=Channel(channel), result=ContactResult.WRONG_NUMBER,
            actor=Actor(kind=ActorKind.SYSTEM, id=f"{channel}-provider"),
            note=reason[:2000], address=address)
        try:
            # a loan that ended: the mark alone keeps the address from use
            with contextlib.suppress(LoanClosed, LoanNotFound):
                await self.client.record_contact_outcome(attempt.loan_id, report)
        except BaseException:
            await self.store.unmark(channel, address)
            raise

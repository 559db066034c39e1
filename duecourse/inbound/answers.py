"""Sending the answers a reply requires (the STOP confirmation, the HELP text) through the
worker's channel router: the configured SMS gateway, or the outbox when none is set.

These are answers to the borrower's own message that carriers require, not collection
contacts, so they go out directly rather than through the loan's compliance checks; the
idempotency key makes a repeated answer the same message."""

from __future__ import annotations

from dataclasses import dataclass

from duecourse.channels.base import Channel, ChannelError, OutgoingMessage


@dataclass(frozen=True)
class Answered:
    message_id: str | None
    error: str | None


async def answer(channel: Channel, key: str, to: str, text: str, language: str,
                 loan_id: str = "", case_id: str = "") -> Answered:
    """Send one SMS; a provider's refusal is kept with the reply, never raised."""
    message = OutgoingMessage(idempotency_key=key, channel="sms", recipient=to, subject=None,
                              body=text, language=language, loan_id=loan_id, case_id=case_id)
    try:
        return Answered(await channel.send(message), None)
    except ChannelError as err:
        return Answered(None, str(err))

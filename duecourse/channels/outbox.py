"""Records messages in the ledger instead of sending them: safe by default, inspectable."""

from __future__ import annotations

from duecourse.channels.base import OutgoingMessage
from duecourse.store.ledger import Ledger


class OutboxChannel:
    name = "outbox"

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def send(self, message: OutgoingMessage) -> str:
        message_id = await self._ledger.store_outbox_message(
            message.idempotency_key, message.channel, message.recipient, message.subject,
            message.body)
        return f"outbox-{message_id}"

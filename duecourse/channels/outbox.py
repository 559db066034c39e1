"""Records messages in the ledger instead of sending them: safe by default, inspectable."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from duecourse.channels.base import ChannelError, OutgoingMessage
from duecourse.store.ledger import Ledger


class OutboxChannel:
    name = "outbox"

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def send(self, message: OutgoingMessage) -> str:
        """The same idempotency key always yields the same outbox row (never two)."""
        try:
            message_id = await self._ledger.store_outbox_message(
                message.idempotency_key, message.channel, message.recipient, message.subject,
                message.body)
        except (SQLAlchemyError, OSError, TimeoutError) as err:
            # a transient failure of this "provider"; the message itself stays out of it
            raise ChannelError(f"the outbox is unavailable ({type(err).__name__})") from None
        return f"outbox-{message_id}"

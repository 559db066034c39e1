"""Records messages in the ledger instead of sending them: safe by default, inspectable."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from duecourse.channels.base import ChannelError, OutgoingMessage, Sighting
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

    async def find(self, idempotency_key: str) -> Sighting:
        """The outbox always knows: its row under the key, or none."""
        try:
            found = await self._ledger.outbox_message(idempotency_key)
        except (SQLAlchemyError, OSError, TimeoutError) as err:
            raise ChannelError(f"the outbox is unavailable ({type(err).__name__})") from None
        if found is None:
            return Sighting(known=True)
        message_id, created_at = found
        return Sighting(known=True, message_id=f"outbox-{message_id}", accepted_at=created_at)

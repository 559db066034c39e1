"""The contract every delivery adapter (outbox, SMTP, SMS gateway, dialer) fulfils."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


class OutgoingMessage(BaseModel):
    idempotency_key: str  # adapters pass it to providers so a retry never sends twice
    channel: str
    recipient: str
    subject: str | None
    body: str


class ChannelError(Exception):
    """Delivery failed; `permanent` failures are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    name: str

    async def send(self, message: OutgoingMessage) -> str:
        """Deliver `message` and return the provider's message id."""
        ...

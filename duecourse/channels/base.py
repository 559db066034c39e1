"""The contract every delivery adapter (outbox, SMTP, SMS gateway, dialer) fulfils."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel


class OutgoingMessage(BaseModel):
    idempotency_key: str  # adapters pass it to providers so a retry never sends twice
    channel: str
    recipient: str
    subject: str | None
    body: str
    html: str | None = None  # email: the HTML part rendered from the same template
    language: str = "en"
    loan_id: str = ""  # for links bound to the loan (opt-out), never shown to providers
    case_id: str = ""
    decision: dict[str, str] | None = None  # the may-contact decision (a dialer shows it)


class ChannelError(Exception):
    """Delivery failed; `permanent` failures are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Sighting:
    """What a channel knows of a message by its idempotency key: `known` False when it
    cannot tell (no lookup in its provider's API); else `message_id` is the provider's id
    of the message it accepted (None: it never accepted one), `accepted_at` when."""

    known: bool
    message_id: str | None = None
    accepted_at: datetime | None = None


UNKNOWABLE = Sighting(known=False)


class Channel(Protocol):
    name: str

    async def send(self, message: OutgoingMessage) -> str:
        """Deliver `message` and return the provider's message id."""
        ...

    async def find(self, idempotency_key: str) -> Sighting:
        """Whether the provider accepted a message under this key. Asked only about a send
        whose attempt ended without an answer (a worker that died after the call, a reply
        that never came), so the ledger can say "sent" instead of "in doubt"."""
        ...

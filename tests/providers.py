"""Stand-ins for outside providers behind the channel contract (duecourse.channels): they
deliver to the real outbox but fail the way a provider does - a refusal (4xx), a few
outages (5xx) - or break the ledger right after accepting. Never a stand-in for our own
code: every activity, workflow and table they meet is the real one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from duecourse.channels import ChannelError, OutboxChannel, OutgoingMessage, Sighting
from duecourse.store import Ledger


@dataclass
class FlakyProvider:
    """The outbox, after `failures` transient errors (or for ever when `permanent`), for
    messages to `recipient` (or to anyone when it is empty)."""

    ledger: Ledger
    failures: int = 0
    permanent: bool = False
    recipient: str = ""
    calls: list[str] = field(default_factory=list)
    after_accept: Callable[[], Awaitable[None]] | None = None
    name: str = "flaky"

    async def send(self, message: OutgoingMessage) -> str:
        mine = not self.recipient or message.recipient == self.recipient
        self.calls.append(message.idempotency_key)
        if mine and self.permanent:
            raise ChannelError("provider answered 400: recipient refused", permanent=True)
        if mine and sum(k == message.idempotency_key for k in self.calls) <= self.failures:
            raise ChannelError("provider answered 503: try again later")
        message_id = await OutboxChannel(self.ledger).send(message)
        if mine and self.after_accept is not None:
            hook, self.after_accept = self.after_accept, None
            await hook()
        return message_id

    async def find(self, idempotency_key: str) -> Sighting:
        return await OutboxChannel(self.ledger).find(idempotency_key)


@dataclass
class AnswerLost:
    """A provider that takes the message (into the real outbox) and then loses the answer:
    the connection drops once `release` is set, as if the worker had died after its call."""

    ledger: Ledger
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = "answer-lost"

    async def send(self, message: OutgoingMessage) -> str:
        await OutboxChannel(self.ledger).send(message)
        self.accepted.set()
        await self.release.wait()
        raise ChannelError("the connection to the provider dropped before it answered")

    async def find(self, idempotency_key: str) -> Sighting:
        return await OutboxChannel(self.ledger).find(idempotency_key)

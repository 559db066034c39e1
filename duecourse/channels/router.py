"""One adapter per channel kind (sms, email, voice, letter, visit), the outbox for any kind
not configured: a fresh install sends nothing."""

from __future__ import annotations

from collections.abc import Mapping

from duecourse.channels.base import Channel, OutgoingMessage, Sighting


class ChannelRouter:
    """Routes each message to its kind's adapter. Itself a Channel, so callers that send
    one message at a time need not know about kinds."""

    name = "router"

    def __init__(self, default: Channel, routes: Mapping[str, Channel] | None = None) -> None:
        self._default = default
        self._routes = dict(routes or {})

    def for_kind(self, kind: str) -> Channel:
        """The adapter that delivers messages of this kind."""
        return self._routes.get(str(kind), self._default)

    def routes(self) -> dict[str, str]:
        """Kind -> adapter name, for the worker's start-up line and `duecourse channels`."""
        kinds = ("sms", "email", "voice", "letter", "visit")
        return {kind: self.for_kind(kind).name for kind in kinds}

    async def send(self, message: OutgoingMessage) -> str:
        return await self.for_kind(message.channel).send(message)

    async def find(self, idempotency_key: str, kind: str = "") -> Sighting:
        return await self.for_kind(kind).find(idempotency_key)


def as_router(channel: Channel) -> ChannelRouter:
    """A router as given, or one that sends every kind through this single adapter."""
    return channel if isinstance(channel, ChannelRouter) else ChannelRouter(channel)

"""Channel adapters deliver rendered messages. The embedded default is the outbox."""

from duecourse.channels.base import Channel, ChannelError, OutgoingMessage
from duecourse.channels.outbox import OutboxChannel

__all__ = ["Channel", "ChannelError", "OutboxChannel", "OutgoingMessage"]

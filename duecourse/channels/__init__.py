"""Channel adapters deliver rendered messages. The embedded default is the outbox."""

from duecourse.channels.base import UNKNOWABLE, Channel, ChannelError, OutgoingMessage, Sighting
from duecourse.channels.outbox import OutboxChannel

__all__ = ["UNKNOWABLE", "Channel", "ChannelError", "OutboxChannel", "OutgoingMessage",
           "Sighting"]

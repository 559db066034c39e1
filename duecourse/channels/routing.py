"""The channel router a worker builds from its settings: each kind with a URL set goes to
its adapter, the rest to the outbox. A malformed URL stops the worker at start with a
sentence naming the setting (ChannelSettingError)."""

from __future__ import annotations

from duecourse.channels.base import Channel
from duecourse.channels.outbox import OutboxChannel
from duecourse.channels.router import ChannelRouter
from duecourse.settings import Settings
from duecourse.store.ledger import Ledger


class ChannelSettingError(ValueError):
    """A channel setting cannot be used; the message names the setting and the fix."""


def channels_from_settings(settings: Settings, ledger: Ledger) -> ChannelRouter:
    routes: dict[str, Channel] = {}
    if settings.email_url is not None:
        from duecourse.channels.email import smtp_channel

        routes["email"] = smtp_channel(settings, ledger)
    if settings.sms_url:
        from duecourse.channels.sms import sms_channel

        routes["sms"] = sms_channel(settings, ledger)
    if settings.letter_url:
        from duecourse.channels.letters import letter_channel

        routes["letter"] = letter_channel(settings, ledger)
    if settings.voice_url:
        from duecourse.channels.dialer import dialer_channel

        routes["voice"] = dialer_channel(settings, ledger)
    return ChannelRouter(OutboxChannel(ledger), routes)

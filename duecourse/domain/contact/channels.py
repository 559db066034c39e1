"""Which channels a contact step may go out on, in the order they are tried.

Moved out of the workflow's contact path so the workflow and the portfolio simulator
(`duecourse.lab`) choose channels with the same code: the step's own channel, then the
policy's fallbacks, kept to the segment's channels for collection, never one without a
borrower template, never one whose template speaks of legal action on a time-barred
debt, never one without contact details. Pure: the caller asks the compliance engine
about each option in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from duecourse.domain.case.aggregate import Collection
from duecourse.domain.compliance import Decision, Purpose
from duecourse.domain.contact.recipients import recipient_for
from duecourse.domain.policy import Channel, ContactStep

FALLBACK_CODES = ("opted_out", "sms_consent")
"""Blocks that pass on to the step's next channel; any other block ends the step."""


@dataclass(frozen=True)
class ChannelOption:
    """A channel to ask the engine about: its template and the borrower's address on it."""

    channel: Channel
    template: str
    address: str


@dataclass(frozen=True)
class ChannelOptions:
    items: list[ChannelOption | str]
    """Options and, in their place among them, why a channel was passed over."""
    time_barred_only: bool
    """Every channel with a template was passed over because it speaks of legal action
    and the debt is time-barred: the step is skipped, not blocked."""


def falls_back(decision: Decision) -> bool:
    """A block that lets the step try its next channel (opted out, no SMS consent)."""
    return decision.code in FALLBACK_CODES


def channel_options(c: Collection, step: ContactStep, purpose: Purpose,
                    now: datetime) -> ChannelOptions:
    """The channels `step` may try at `now`, in order, with the notes on those passed over."""
    items: list[ChannelOption | str] = []
    barred = step.mentions_legal_action and c.time_barred(now)
    unspoken = 0  # channels passed over because their template speaks of legal action
    usable = 0  # channels with a template that may be used
    allowed = c.policy.treatment(c.state.segment).channels
    channels = [step.channel, *c.policy.channel_fallbacks.get(step.channel, [])]
    if allowed is not None and purpose is Purpose.COLLECTION:
        items += [f"{ch} not used for segment {c.state.segment}" for ch in channels
                  if ch not in allowed][:1]
        channels = [ch for ch in channels if ch in allowed]
    for channel in channels:
        template = step.template_for(channel)
        if template is None:
            items.append(f"no borrower template of step {step.name} for {channel}")
            continue
        if barred and step.speaks_of_legal_action(channel):
            unspoken += 1
            items.append(f"{channel} not used: its template {template} speaks of legal "
                         "action and the debt is time-barred")
            continue
        usable += 1
        address = recipient_for(channel, c.loan.borrower)
        if address is None:
            items.append(f"no {channel} contact details")
            continue
        items.append(ChannelOption(channel=channel, template=template, address=address))
    return ChannelOptions(items=items, time_barred_only=bool(unspoken and not usable))

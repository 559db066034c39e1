"""Where a message on a channel goes for a borrower."""

from __future__ import annotations

from duecourse.domain.loan import Borrower
from duecourse.domain.policy import Channel


def recipient_for(channel: Channel, borrower: Borrower) -> str | None:
    """The borrower's address on `channel`, or None when we hold none."""
    if channel in (Channel.SMS, Channel.VOICE):
        return borrower.phones[0] if borrower.phones else None
    if channel is Channel.EMAIL:
        return borrower.email
    return borrower.address  # letters and visits

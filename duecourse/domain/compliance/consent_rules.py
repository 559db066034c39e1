"""Consent to SMS before any SMS: US practice (the TCPA's prior express consent), a policy
option in every pack (`sms_needs_consent`). Waiting never satisfies it; only consent on
record does, and a withdrawal takes it away again."""

from __future__ import annotations

from datetime import datetime

from duecourse.domain.compliance.context import Context
from duecourse.domain.compliance.model import ProposedContact, RecipientKind
from duecourse.domain.compliance.rule import Rule, never_unless
from duecourse.domain.policy import Channel


def sms_consented(p: ProposedContact, ctx: Context, t: datetime) -> bool:
    """Whether an SMS to the debtor may go at `t`: the pack does not ask for consent, or
    the borrower's consent to SMS was recorded by then. Guarantors and third parties are
    not the borrower; their texts answer to the third-party rules."""
    if not (ctx.pack.sms_needs_consent and p.channel is Channel.SMS
            and p.recipient_kind is RecipientKind.DEBTOR):
        return True
    given = ctx.standing.sms_consent_at
    return given is not None and given <= t


SMS_CONSENT = Rule("sms_consent", never_unless(sms_consented),
                   "no consent to SMS is recorded for the borrower; our policy sends no "
                   "SMS without it")

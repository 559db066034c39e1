"""What the pure compliance tests build alike: instants on a borrower's clock, the context
the engine decides in, and the voice calls a contact history holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from duecourse.domain import compliance
from duecourse.domain.compliance.engine import Context
from duecourse.domain.policy import Channel

NEW_YORK, SHANGHAI = ZoneInfo("America/New_York"), ZoneInfo("Asia/Shanghai")
DEBTOR_PHONE, GUARANTOR_PHONE = "+12125550100", "+12125550199"  # a US debtor's, a guarantor's


def local(zone: ZoneInfo, *args: int) -> datetime:
    """The UTC instant of a wall-clock time in `zone` (year, month, day, hour, ...)."""
    return datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def context(region: str, timezone: str, history: Sequence[compliance.ContactEvent] = (), *,
            overrides: dict[str, dict[str, Any]] | None = None, due_date: date | None = None,
            other_zones: tuple[str, ...] = (), last_payment_on: date | None = None,
            **standing: Any) -> Context:
    """A case in `region` on the borrower's `timezone`: the region's pack with a policy's
    `overrides` (by country), and a standing of the given fields."""
    return Context(pack=compliance.pack_for(region, overrides),
                   standing=compliance.Standing(**standing), history=list(history),
                   timezone=timezone, region=region, due_date=due_date,
                   other_zones=other_zones, last_payment_on=last_payment_on)


def voice_call(at: datetime,
               result: compliance.AttemptResult = compliance.AttemptResult.UNANSWERED,
               address: str = DEBTOR_PHONE,
               kind: compliance.RecipientKind = compliance.RecipientKind.DEBTOR, *,
               purpose: compliance.Purpose = compliance.Purpose.COLLECTION,
               person: str = "") -> compliance.ContactEvent:
    return compliance.ContactEvent(at=at, channel=Channel.VOICE, address=address,
                                   recipient_kind=kind, purpose=purpose, result=result,
                                   person=person)


def guarantor_call(at: datetime,
                   result: compliance.AttemptResult = compliance.AttemptResult.UNANSWERED,
                   address: str = GUARANTOR_PHONE, person: str = "") -> compliance.ContactEvent:
    return voice_call(at, result, address, compliance.RecipientKind.GUARANTOR, person=person)


def to_guarantor(at: datetime, address: str = GUARANTOR_PHONE,
                 person: str = "") -> compliance.ProposedContact:
    """A call proposed to the guarantor."""
    return compliance.ProposedContact(channel=Channel.VOICE, at=at, address=address,
                                      recipient_kind=compliance.RecipientKind.GUARANTOR,
                                      person=person)

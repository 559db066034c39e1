"""Builders for test data: realistic loans relative to a given instant."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.calendar import local_date
from duecourse.domain.case.commands import PaymentReport
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money

AGENT = Actor(kind=ActorKind.AGENT, id="agent-7")
SUPERVISOR = Actor(kind=ActorKind.SUPERVISOR, id="sup-1")


# One zone per UTC offset from +14 to -11, so some borrower is always in office hours.
_ZONES_EAST_TO_WEST = (
    "Pacific/Kiritimati", "Pacific/Tongatapu", "Pacific/Auckland", "Pacific/Noumea",
    "Australia/Brisbane", "Asia/Tokyo", "Asia/Shanghai", "Asia/Bangkok", "Asia/Dhaka",
    "Asia/Karachi", "Asia/Dubai", "Europe/Moscow", "Africa/Cairo", "Africa/Lagos",
    "Atlantic/Reykjavik", "Atlantic/Cape_Verde", "Atlantic/South_Georgia",
    "America/Sao_Paulo", "America/Santo_Domingo", "America/Bogota", "America/Costa_Rica",
    "America/Phoenix", "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
    "Pacific/Pago_Pago")


def daytime_zone(now: datetime) -> str:
    """A borrower time zone where `now` is late morning on a weekday-independent clock, so
    tests on a real-time server are not deferred by quiet hours whenever they run."""
    for zone in _ZONES_EAST_TO_WEST:
        if 10 <= now.astimezone(ZoneInfo(zone)).hour < 14:
            return zone
    raise AssertionError(f"no zone in office hours at {now.isoformat()}")


def make_loan(now: datetime, *, dpd: int = 1, tz: str = "Asia/Shanghai",
              outstanding: str = "1000.00", currency: str = "CNY", jurisdiction: str = "CN",
              policy: str = "standard", **borrower: Any) -> LoanIntake:
    due: date = local_date(now, tz) - timedelta(days=dpd)
    loan_id = f"L-{uuid4().hex[:12]}"
    return LoanIntake(
        loan_id=loan_id,
        borrower={"borrower_id": f"B-{loan_id}", "name": "Li Wei",
                  "phones": ["+8613800138000"], "email": "li.wei@example.com",
                  "address": "1 Nanjing Road, Shanghai", "timezone": tz,
                  "language": "zh-CN", **borrower},
        jurisdiction=jurisdiction, currency=currency, principal=Decimal(outstanding),
        outstanding=Decimal(outstanding), due_date=due, policy=policy)


def payment(amount: str, reference: str | None = None, currency: str = "CNY",
            at: datetime | None = None) -> PaymentReport:
    return PaymentReport(reference=reference or f"PAY-{uuid4().hex[:8]}",
                         amount=Money.of(amount, currency),
                         paid_at=at or datetime.fromisoformat("2026-01-01T00:00:00+00:00"))

"""The provider_payments ledger: one row per checkout, moved by the provider's webhooks.

Transitions are guarded in SQL so a webhook delivered twice, or out of order, cannot
undo a later fact: open -> paid | failed | held, failed -> paid | held (a retried card),
open | failed | held | paid -> refunded. `held`: the provider took it in a currency other
than the checkout's, so it was not reported to the loan (a person decides). Every
transition is one guarded UPDATE whose row count is the answer, so a caller decides from
what the statement did, never from an earlier read that a concurrent webhook may have made
stale. A refund never touches the loan's balance (the engine has no payment reversal);
the caller raises an ops alert when the loan had taken the payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.money import Money
from duecourse.payments.base import ledger_reference
from duecourse.store import tables as t

P = t.provider_payments


@dataclass(frozen=True)
class Row:
    provider: str
    checkout_id: str
    case_id: str
    loan_id: str
    reference: str
    amount: Money
    status: str
    paid_at: datetime | None
    reported_at: datetime | None

    @classmethod
    def of(cls, r: Any) -> Row:
        return cls(r.provider, r.checkout_id, r.case_id, r.loan_id, r.reference,
                   Money.of(r.amount, r.currency), r.status, r.paid_at, r.reported_at)


async def open_checkout(engine: AsyncEngine, provider: str, checkout_id: str, case_id: str,
                        loan_id: str, amount: Money, at: datetime) -> str:
    """Record a checkout just created; returns the loan's payment reference for it."""
    reference = ledger_reference(provider, checkout_id)
    async with engine.begin() as conn:
        await conn.execute(insert(P).values(
            provider=provider, checkout_id=checkout_id, case_id=case_id, loan_id=loan_id,
            reference=reference, amount=amount.amount, currency=amount.currency,
            status="open", created_at=at, updated_at=at))
    return reference


async def find(engine: AsyncEngine, provider: str, checkout_id: str) -> Row | None:
    async with engine.connect() as conn:
        r = (await conn.execute(select(P).where(P.c.provider == provider,
                                                P.c.checkout_id == checkout_id))).first()
    return None if r is None else Row.of(r)


async def mark_paid(engine: AsyncEngine, provider: str, checkout_id: str, amount: Money,
                    at: datetime, external_id: str | None = None) -> bool:
    """Paid, with the amount the provider took; True when this call moved the row to paid
    (False: it was paid, held or refunded already - re-read it to know which)."""
    async with engine.begin() as conn:
        result = await conn.execute(update(P).where(
            P.c.provider == provider, P.c.checkout_id == checkout_id,
            P.c.status.in_(("open", "failed"))).values(
            status="paid", amount=amount.amount, currency=amount.currency, paid_at=at,
            updated_at=at, **({"external_id": external_id} if external_id else {})))
    return bool(result.rowcount)


async def mark_held(engine: AsyncEngine, provider: str, checkout_id: str, at: datetime,
                    external_id: str | None = None) -> bool:
    """Taken by the provider but not reported to the loan (a currency other than the
    checkout's); the checkout's amount is kept. True when this call moved it."""
    async with engine.begin() as conn:
        result = await conn.execute(update(P).where(
            P.c.provider == provider, P.c.checkout_id == checkout_id,
            P.c.status.in_(("open", "failed"))).values(
            status="held", paid_at=at, updated_at=at,
            **({"external_id": external_id} if external_id else {})))
    return bool(result.rowcount)


async def remember_external_id(engine: AsyncEngine, provider: str, checkout_id: str,
                               external_id: str) -> None:
    """The provider's other id for the checkout (Stripe: its payment intent), kept as soon
    as an event tells it, so a refund that arrives before the paid event finds the row."""
    async with engine.begin() as conn:
        await conn.execute(update(P).where(
            P.c.provider == provider, P.c.checkout_id == checkout_id,
            P.c.external_id.is_(None)).values(external_id=external_id))


async def mark_reported(engine: AsyncEngine, provider: str, checkout_id: str,
                        at: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(P).where(
            P.c.provider == provider, P.c.checkout_id == checkout_id,
            P.c.reported_at.is_(None)).values(reported_at=at))


async def mark_failed(engine: AsyncEngine, provider: str, checkout_id: str,
                      at: datetime) -> bool:
    """Failed, unless already paid or refunded (a late failure of an earlier attempt)."""
    async with engine.begin() as conn:
        result = await conn.execute(update(P).where(
            P.c.provider == provider, P.c.checkout_id == checkout_id,
            P.c.status == "open").values(status="failed", updated_at=at))
    return bool(result.rowcount)


async def mark_refunded(engine: AsyncEngine, provider: str, checkout_id: str,
                        at: datetime) -> Literal["paid", "unpaid"] | None:
    """Refunded. What it was is the answer of the statement that moved it: `paid` (the loan
    had taken it: the caller alerts ops), `unpaid` (open, failed or held: no loan counted
    it), None when it was refunded already (a second delivery: no second alert).

    Each attempt is its own statement: on PostgreSQL a statement that waited for a
    concurrent paid webhook's row lock re-checks its condition on the new row and may
    then match nothing, so both are tried again until one matches or the row is refunded.
    """
    for _ in range(5):
        for was, statuses in (("paid", ("paid",)), ("unpaid", ("open", "failed", "held"))):
            async with engine.begin() as conn:
                result = await conn.execute(update(P).where(
                    P.c.provider == provider, P.c.checkout_id == checkout_id,
                    P.c.status.in_(statuses)).values(status="refunded", refunded_at=at,
                                                     updated_at=at))
            if result.rowcount:
                return was  # type: ignore[return-value]
        row = await find(engine, provider, checkout_id)
        if row is None or row.status == "refunded":
            return None
    raise RuntimeError(f"provider payment {provider}:{checkout_id} kept changing while it "
                       "was being marked refunded")


async def by_external_id(engine: AsyncEngine, provider: str, external_id: str) -> Row | None:
    async with engine.connect() as conn:
        r = (await conn.execute(select(P).where(P.c.provider == provider,
                                                P.c.external_id == external_id))).first()
    return None if r is None else Row.of(r)


async def ledger_payments(engine: AsyncEngine, provider: str, since: datetime,
                          until: datetime) -> dict[str, Money]:
    """Payments the loans received through `provider` in [since, until), by reference."""
    prefix = ledger_reference(provider, "")
    p = t.payments
    async with engine.connect() as conn:
        rows = (await conn.execute(select(p.c.reference, p.c.amount, p.c.currency).where(
            p.c.reference.startswith(prefix, autoescape=True), p.c.paid_at >= since,
            p.c.paid_at < until))).all()
    return {r.reference: Money.of(Decimal(r.amount), r.currency) for r in rows}


async def known_references(engine: AsyncEngine, provider: str,
                           references: list[str]) -> dict[str, Money]:
    """Of `references`, those a loan received, with the amount (any date)."""
    if not references:
        return {}
    p = t.payments
    async with engine.connect() as conn:
        rows = (await conn.execute(select(p.c.reference, p.c.amount, p.c.currency).where(
            p.c.reference.in_(references)))).all()
    return {r.reference: Money.of(Decimal(r.amount), r.currency) for r in rows}

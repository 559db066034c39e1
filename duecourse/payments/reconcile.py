"""The daily reconciliation: the provider's books against the ledger, for one UTC day.

Two lists, each line with its reason: payments the provider took that no loan received
(a webhook lost or refused: have the provider send it again - its reference keeps it to
one payment), and payments loans received through the provider that the provider does not
show as paid (never taken, failed, or refunded since: money counted that is not there).
The provider is asked about checkouts created up to LOOKBACK before the day, so one
opened earlier and paid on the day is neither missed nor a false alarm, and about the
refunds made on the day, so a payment the loan took days ago and the provider refunded
today is listed today.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.money import Money
from duecourse.payments import store
from duecourse.payments.base import PaymentProvider, ProviderPayment, ledger_reference
from duecourse.store import tables as t

LOOKBACK = timedelta(days=7)
"""How long before the day a checkout may have been created and still be paid on it.
Providers list checkouts by creation time (Stripe: Checkout Sessions), but a session
paid by a delayed method (a bank debit) completes days later - up to about a week;
asking about checkouts created a day before only would miss those payments and call a
loan's receipt of one "no such payment"."""


@dataclass(frozen=True)
class Difference:
    reference: str
    amount: Money
    why: str


@dataclass
class Reconciliation:
    provider: str
    day: date
    provider_paid: int = 0
    ledger_paid: int = 0
    unknown_to_ledger: list[Difference] = field(default_factory=list)
    unknown_to_provider: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.unknown_to_ledger and not self.unknown_to_provider

    def as_json(self) -> dict[str, Any]:
        def one(d: Difference) -> dict[str, str]:
            return {**asdict(d), "amount": str(d.amount.amount),
                    "currency": d.amount.currency}
        return {"provider": self.provider, "day": self.day.isoformat(),
                "provider_paid": self.provider_paid, "ledger_paid": self.ledger_paid,
                "unknown_to_ledger": [one(d) for d in self.unknown_to_ledger],
                "unknown_to_provider": [one(d) for d in self.unknown_to_provider]}


async def reconcile(provider: PaymentProvider, engine: AsyncEngine,
                    day: date) -> Reconciliation:
    since = datetime.combine(day, time(), UTC)
    until = since + timedelta(days=1)
    listed = {ledger_reference(provider.name, p.reference): p
              for p in await provider.list_payments(since - LOOKBACK, until)}
    refunds = {ledger_reference(provider.name, r.reference): r
               for r in await provider.list_refunds(since, until)}
    for ref, r in refunds.items():  # a session still says paid once refunded (Stripe)
        if ref in listed:
            listed[ref] = ProviderPayment(listed[ref].reference, listed[ref].amount,
                                          "refunded", r.at)
    paid = {ref: p for ref, p in listed.items() if p.status == "paid"}
    paid_today = {ref: p for ref, p in paid.items() if since <= p.at < until}
    received = await store.known_references(engine, provider.name,
                                            sorted({*paid, *refunds}))
    report = Reconciliation(provider.name, day, provider_paid=len(paid_today))
    for ref, p in sorted(paid.items()):  # taken on an earlier day, still not received
        if ref not in received:
            report.unknown_to_ledger.append(Difference(
                ref, p.amount, "the provider took it; no loan received it"))
        elif received[ref] != p.amount:
            report.unknown_to_ledger.append(Difference(
                ref, p.amount, f"the loan received {received[ref].amount} "
                               f"{received[ref].currency} instead"))
    ours = await store.ledger_payments(engine, provider.name, since, until)
    report.ledger_paid = len(ours)
    for ref, amount in sorted(ours.items()):
        seen = listed.get(ref)
        if ref in refunds:
            continue  # said below, with the day of the refund
        if seen is None:
            report.unknown_to_provider.append(Difference(
                ref, amount, "a loan received it; the provider has no such payment"))
        elif seen.status != "paid":
            report.unknown_to_provider.append(Difference(
                ref, amount, f"a loan received it; the provider shows it {seen.status}"))
    for ref, r in sorted(refunds.items()):
        if ref in received:
            report.unknown_to_provider.append(Difference(
                ref, received[ref], f"a loan received it; the provider refunded "
                                    f"{r.amount.amount} {r.amount.currency} of it on {day}"))
    return report


async def owners(engine: AsyncEngine, references: list[str]) -> dict[str, tuple[str, str]]:
    """The (case_id, loan_id) each of `references` belongs to: the checkout of ours it is
    (provider_payments), else the loan that received it (payments); absent when neither
    knows it (a payment not made through a checkout of ours)."""
    found: dict[str, tuple[str, str]] = {}
    for table in (t.provider_payments, t.payments):
        wanted = [r for r in references if r not in found]
        if not wanted:
            break
        async with engine.connect() as conn:
            rows = (await conn.execute(select(table.c.reference, table.c.case_id,
                                              table.c.loan_id).where(
                table.c.reference.in_(wanted)))).all()
        for r in rows:
            found.setdefault(r.reference, (r.case_id, r.loan_id))
    return found

"""From a borrower's choice to the loan: open a checkout, then act on the provider's
verified events.

A `paid` event reaches the loan as a PaymentReport whose reference is the provider's
checkout id (`<provider>:<id>`), so a webhook delivered twice is one payment. `failed` is
recorded only. The engine has no payment reversal, so a `refunded` event is recorded and,
for a payment the loan already took, raises an ops alert (once) saying the balance was
not restored: a person decides what the loan owes; the balance is never reduced twice
nor silently raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.case.commands import PaymentReport
from duecourse.domain.loan import workflow_id_for
from duecourse.domain.money import Money
from duecourse.payments import store
from duecourse.payments.base import Checkout, EventKind, PaymentProvider, ProviderEvent
from duecourse.store import Ledger
from duecourse.temporal.client import CollectionClient, LoanClosed, LoanNotFound
from duecourse.temporal.contracts import OpsAlert

log = structlog.get_logger(__name__)


async def start_checkout(provider: PaymentProvider, engine: AsyncEngine, loan_id: str,
                         case_id: str, amount: Money, return_url: str) -> Checkout:
    """Create the provider's checkout and record it open before the borrower leaves."""
    checkout = await provider.create_checkout(loan_id, case_id, amount, return_url)
    await store.open_checkout(engine, provider.name, checkout.id, case_id, loan_id, amount,
                              datetime.now(UTC))
    return checkout


@dataclass(frozen=True)
class Received:
    """What became of an event: unknown, accepted, duplicate, failed, refunded, ignored."""

    outcome: str
    loan_id: str | None = None


async def receive(provider: str, event: ProviderEvent, ledger: Ledger,
                  client: CollectionClient) -> Received:
    """Act on one verified event. Raises what report_payment raises when the engine
    cannot confirm the payment (the caller answers 503: the provider retries)."""
    engine = ledger.engine
    row = await store.find(engine, provider, event.reference) if event.reference else None
    if row is None and event.external_id:
        row = await store.by_external_id(engine, provider, event.external_id)
    if row is None:  # not a checkout of ours: reconciliation lists it
        log.warning("payment event for an unknown checkout", provider=provider,
                    kind=event.kind.value)
        return Received("unknown")
    if event.kind is EventKind.FAILED:
        await store.mark_failed(engine, provider, row.checkout_id, event.at)
        return Received("failed" if row.status in ("open", "failed") else "ignored",
                        row.loan_id)
    if event.kind is EventKind.REFUNDED:
        return await _refunded(provider, event, ledger, row)
    if row.status == "refunded":
        return Received("ignored", row.loan_id)
    await store.mark_paid(engine, provider, row.checkout_id, event.amount, event.at,
                          event.external_id)
    try:
        outcome = await client.report_payment(row.loan_id, PaymentReport(
            reference=row.reference, amount=event.amount, paid_at=event.at,
            actor=Actor(kind=ActorKind.PLATFORM, id=f"payments:{provider}")))
    except (LoanClosed, LoanNotFound):  # paid after collection ended (the workflow
        # closed: a test server says not found): money taken that no loan counts
        await _alert(ledger, row, event.at, f"paid after collection ended ({provider})",
                     f"{provider} took {_money(event.amount)} as payment {row.reference} "
                     "after the loan's collection had ended; the loan did not receive it. "
                     "Refund the borrower or apply it by hand.")
        return Received("loan_closed", row.loan_id)
    await store.mark_reported(engine, provider, row.checkout_id, datetime.now(UTC))
    # signalled again all the same (the engine ignores a known reference): the answer
    # says whether this delivery was news
    seen = row.reported_at is not None or outcome.status == "duplicate"
    return Received("duplicate" if seen else "accepted", row.loan_id)


async def _refunded(provider: str, event: ProviderEvent, ledger: Ledger,
                    row: store.Row) -> Received:
    first = await store.mark_refunded(ledger.engine, provider, row.checkout_id, event.at)
    if first and row.status == "paid":
        await _alert(ledger, row, event.at, f"refunded by {provider}",
                     f"{provider} refunded {_money(event.amount)} of payment "
                     f"{row.reference}, which the loan had already received. The engine has "
                     "no payment reversal: the balance was not changed back. Decide what "
                     "the borrower owes and correct it.")
    return Received("refunded", row.loan_id)


def _money(m: Money) -> str:
    return f"{m.amount} {m.currency}"


async def _alert(ledger: Ledger, row: store.Row, at: datetime, what: str, body: str) -> None:
    """One alert per payment and kind (the ledger keys it), for ops to acknowledge."""
    kind = what.split(" ", 1)[0]
    await ledger.record_alert(OpsAlert(
        idempotency_key=f"{row.case_id}:payment-{kind}:{row.reference}", case_id=row.case_id,
        workflow_id=workflow_id_for(row.loan_id), loan_id=row.loan_id, raised_at=at,
        subject=f"[{row.loan_id}] payment {row.reference} {what}", body=body))

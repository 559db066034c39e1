"""From a borrower's choice to the loan: open a checkout, then act on the provider's
verified events.

A `paid` event reaches the loan as a PaymentReport whose reference is the provider's
checkout id (`<provider>:<id>`), so a webhook delivered twice is one payment. An amount
other than the checkout's is reported (the amount taken) and raises an ops alert; a
currency other than the checkout's is not reported at all (held, with an alert), and
neither is an answer from the engine that did not take it. `failed` is recorded only.
The engine has no payment reversal, so a `refunded` event is recorded and,
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
from duecourse.temporal.payment_trace import PaymentFate

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
    """What became of an event: unknown, pending, accepted, duplicate, failed, refunded,
    held (taken in another currency: not reported, ops alerted), loan_closed, ignored."""

    outcome: str
    loan_id: str | None = None


class Unresolved(LookupError):
    """An event about a checkout of ours that the ledger has no row for yet (a refund
    before anything else about its checkout): the caller answers 409 so the provider
    delivers it again, rather than dropping it."""


async def receive(provider: PaymentProvider, event: ProviderEvent, ledger: Ledger,
                  client: CollectionClient) -> Received:
    """Act on one verified event. Raises what report_payment raises when the engine
    cannot confirm the payment, and ProviderError when the provider could not be asked
    which checkout a refund is for (the caller answers 503: the provider retries), and
    Unresolved (409, likewise)."""
    row = await locate(provider, event, ledger.engine)
    if row is None:  # not a checkout of ours: reconciliation lists it
        log.warning("payment event for an unknown checkout", provider=provider.name,
                    kind=event.kind.value)
        return Received("unknown")
    return await apply(provider.name, event, ledger, client, row)


async def locate(provider: PaymentProvider, event: ProviderEvent,
                 engine: AsyncEngine) -> store.Row | None:
    """The row an event is about, by the checkout's id or the provider's other id; a refund
    that names only a payment intent nobody has told us of yet (Stripe may send
    charge.refunded before checkout.session.completed) is resolved by asking the provider
    which checkout holds it. The provider's other id is remembered as soon as it is known."""
    name = provider.name
    row = await store.find(engine, name, event.reference) if event.reference else None
    if row is None and event.external_id:
        row = await store.by_external_id(engine, name, event.external_id)
        if row is None and event.kind is EventKind.REFUNDED:
            checkout_id = await provider.checkout_of(event.external_id)
            if checkout_id is None:
                return None  # a payment not made through a checkout of ours
            row = await store.find(engine, name, checkout_id)
            if row is None:
                raise Unresolved(f"{name} checkout {checkout_id} is not in the ledger (yet)")
    if row is not None and event.external_id:
        await store.remember_external_id(engine, name, row.checkout_id, event.external_id)
    return row


async def apply(provider: str, event: ProviderEvent, ledger: Ledger, client: CollectionClient,
                row: store.Row) -> Received:
    """Act on `event` for `row` as it was read. Every decision comes from what the guarded
    statement did, not from `row.status`, which a concurrent webhook may have made stale:
    a refund landing between the read and the paid update leaves the paid update matching
    nothing (the row is refunded: nothing is reported), and a refund read as `open` just
    after the paid update still alerts because its statement found the row paid."""
    engine = ledger.engine
    if event.kind is EventKind.PENDING:
        return Received("pending", row.loan_id)
    if event.kind is EventKind.FAILED:
        if await store.mark_failed(engine, provider, row.checkout_id, event.at):
            return Received("failed", row.loan_id)
        now = await store.find(engine, provider, row.checkout_id)
        return Received("failed" if now and now.status == "failed" else "ignored",
                        row.loan_id)
    if event.kind is EventKind.REFUNDED:
        return await _refunded(provider, event, ledger, row)
    return await _paid(provider, event, ledger, client, row)


async def _paid(provider: str, event: ProviderEvent, ledger: Ledger, client: CollectionClient,
                row: store.Row) -> Received:
    engine = ledger.engine
    wanted, taken = row.amount, event.amount  # the checkout's amount, as it was opened
    if row.status in ("open", "failed", "held") and taken.currency != wanted.currency:
        if await store.mark_held(engine, provider, row.checkout_id, event.at,
                                 event.external_id) or row.status == "held":
            await _alert(ledger, row, event.at, f"paid in {taken.currency}, not "
                         f"{wanted.currency} ({provider})",
                         f"{provider} took {_money(taken)} as payment {row.reference}, for "
                         f"a checkout of {_money(wanted)}. It was not reported to the loan, "
                         "whose balance is unchanged: apply it by hand in the loan's "
                         "currency, or refund the borrower.", key="currency")
            return Received("held", row.loan_id)
        now = await store.find(engine, provider, row.checkout_id)  # moved meanwhile
        return Received(now.status if now is not None else "ignored", row.loan_id)
    if row.status in ("open", "failed") and taken != wanted:
        await _alert(ledger, row, event.at, f"paid {_money(taken)}, not {_money(wanted)} "
                     f"({provider})",
                     f"{provider} took {_money(taken)} as payment {row.reference}, for a "
                     f"checkout of {_money(wanted)}. The loan receives the amount taken, "
                     f"{_money(taken)}; check why they differ.", key="amount")
    if not await store.mark_paid(engine, provider, row.checkout_id, taken, event.at,
                                 event.external_id):
        now = await store.find(engine, provider, row.checkout_id)
        if now is None or now.status != "paid":  # refunded (or held) meanwhile: the
            # money was given back, or is not the loan's: nothing reaches the loan
            return Received(now.status if now and now.status == "held" else "ignored",
                            row.loan_id)
        row = now  # paid already: a delivery again, reported again (the engine dedups)
    try:
        outcome = await client.report_payment(row.loan_id, PaymentReport(
            reference=row.reference, amount=taken, paid_at=event.at,
            actor=Actor(kind=ActorKind.PLATFORM, id=f"payments:{provider}")))
    except (LoanClosed, LoanNotFound):  # paid after collection ended (the workflow
        # closed: a test server says not found): money taken that no loan counts
        await _alert(ledger, row, event.at, f"paid after collection ended ({provider})",
                     f"{provider} took {_money(taken)} as payment {row.reference} "
                     "after the loan's collection had ended; the loan did not receive it. "
                     "Refund the borrower or apply it by hand.")
        return Received("loan_closed", row.loan_id)
    if outcome.status not in ("accepted", "duplicate") or \
            outcome.fate is PaymentFate.REFUSED:
        await _alert(ledger, row, event.at, f"not taken by the loan ({provider})",
                     f"{provider} took {_money(taken)} as payment {row.reference}; the "
                     f"loan answered {outcome.status} ({outcome.detail}). Check the loan "
                     "and apply it by hand or refund the borrower.", key="refused")
        return Received("refused", row.loan_id)
    await store.mark_reported(engine, provider, row.checkout_id, datetime.now(UTC))
    # signalled again all the same (the engine ignores a known reference): the answer
    # says whether this delivery was news
    seen = row.reported_at is not None or outcome.status == "duplicate"
    return Received("duplicate" if seen else "accepted", row.loan_id)


async def _refunded(provider: str, event: ProviderEvent, ledger: Ledger,
                    row: store.Row) -> Received:
    was = await store.mark_refunded(ledger.engine, provider, row.checkout_id, event.at)
    if was == "paid":  # decided by the statement that moved it: confirmed to the loan
        received = await store.known_references(ledger.engine, provider, [row.reference])
        whether = ("which the loan had already received" if row.reference in received else
                   "which was confirmed for the loan but is not among its payments yet "
                   "(its report may still arrive): check the loan's payments first")
        await _alert(ledger, row, event.at, f"refunded by {provider}",
                     f"{provider} refunded {_money(event.amount)} of payment "
                     f"{row.reference}, {whether}. The engine has no payment reversal: the "
                     "balance was not changed back. Decide what the borrower owes and "
                     "correct it.")
    return Received("refunded", row.loan_id)


def _money(m: Money) -> str:
    return f"{m.amount} {m.currency}"


async def _alert(ledger: Ledger, row: store.Row, at: datetime, what: str, body: str,
                 key: str | None = None) -> None:
    """One alert per payment and kind (the ledger keys it), for ops to acknowledge."""
    kind = key or what.split(" ", 1)[0]
    await ledger.record_alert(OpsAlert(
        idempotency_key=f"{row.case_id}:payment-{kind}:{row.reference}", case_id=row.case_id,
        workflow_id=workflow_id_for(row.loan_id), loan_id=row.loan_id, raised_at=at,
        subject=f"[{row.loan_id}] payment {row.reference} {what}", body=body))

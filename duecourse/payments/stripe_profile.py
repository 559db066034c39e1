"""Stripe Checkout through Stripe's official Python library.

`create_checkout` makes a Checkout Session (mode payment, one line for the amount, the
loan and case in its metadata); the webhook is verified with the library
(`Stripe-Signature`, the endpoint's signing secret, five minutes' tolerance);
`list_payments` pages through the sessions created in a window, `list_refunds` through
the refunds made in one (`GET /v1/refunds`, each mapped by its payment intent to a
session). The API base is configurable (`stripe_api_base`), so tests run against a local
server that speaks the same endpoints. Events acted on: checkout.session.completed and
async_payment_succeeded (paid, when payment_status is paid; completed while the money is
still on its way only remembers the payment intent), async_payment_failed and expired
(failed), charge.refunded (refunded, found by its payment intent - through
`GET /v1/checkout/sessions?payment_intent=` when it arrives before the session's paid
event).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe

from duecourse.domain.money import Money, minor_units
from duecourse.payments.base import (
    BadSignature,
    Checkout,
    EventKind,
    ProviderError,
    ProviderEvent,
    ProviderPayment,
)

PAID = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
FAILED = ("checkout.session.async_payment_failed", "checkout.session.expired")


def to_minor(amount: Money) -> int:
    return int(amount.amount.scaleb(minor_units(amount.currency)))


def from_minor(value: int, currency: str) -> Money:
    code = currency.upper()
    return Money.of(Decimal(value).scaleb(-minor_units(code)), code)


class StripeProvider:
    name = "stripe"

    def __init__(self, api_key: str, webhook_secret: str, api_base: str | None = None,
                 product_name: str = "Loan repayment") -> None:
        self.webhook_secret = webhook_secret
        self.product_name = product_name
        self.client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else None,
            http_client=stripe.HTTPXClient(), max_network_retries=2)

    async def create_checkout(self, loan_id: str, case_id: str, amount: Money,
                              return_url: str) -> Checkout:
        try:
            session = await self.client.v1.checkout.sessions.create_async({
                "mode": "payment", "success_url": return_url, "cancel_url": return_url,
                "client_reference_id": case_id,
                "metadata": {"loan_id": loan_id, "case_id": case_id},
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": amount.currency.lower(), "unit_amount": to_minor(amount),
                    "product_data": {"name": self.product_name}}}]})
        except stripe.StripeError as err:
            raise ProviderError(f"Stripe did not create the checkout: "
                                f"{err.user_message or err.__class__.__name__}") from err
        if not session.url:
            raise ProviderError("Stripe created a checkout session without a page URL")
        return Checkout(session.id, session.url)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent | None:
        sig = {k.lower(): v for k, v in headers.items()}.get("stripe-signature")
        try:
            event = self.client.construct_event(body, sig, self.webhook_secret)
        except (stripe.SignatureVerificationError, ValueError) as err:
            raise BadSignature(f"the Stripe-Signature does not verify: {err}") from err
        obj: dict[str, Any] = event.data.object.to_dict()
        at = datetime.fromtimestamp(event.created, UTC)
        if event.type in PAID + FAILED and not _a_payment(obj):
            return None  # a setup or subscription session of another integration
        if event.type in PAID:
            status = obj.get("payment_status")
            if status not in ("paid", "unpaid"):
                return None  # no_payment_required: nothing was or will be taken
            kind = EventKind.PAID if status == "paid" else \
                EventKind.PENDING  # completed, the money still on its way (async methods)
            return ProviderEvent(kind, obj["id"],
                                 from_minor(obj["amount_total"], obj["currency"]), at,
                                 obj.get("payment_intent"))
        if event.type in FAILED:
            return ProviderEvent(EventKind.FAILED, obj["id"],
                                 from_minor(obj.get("amount_total") or 0, obj["currency"]), at,
                                 obj.get("payment_intent"))
        if event.type == "charge.refunded" and obj.get("payment_intent") and obj.get("currency"):
            return ProviderEvent(EventKind.REFUNDED, "", from_minor(
                obj.get("amount_refunded") or 0, obj["currency"]), at, obj["payment_intent"])
        return None

    async def list_payments(self, since: datetime, until: datetime) -> list[ProviderPayment]:
        found = []
        try:
            page = await self.client.v1.checkout.sessions.list_async({
                "created": {"gte": int(since.timestamp()), "lt": int(until.timestamp())},
                "limit": 100})
            async for s in page.auto_paging_iter():
                status = ("paid" if s.payment_status == "paid" else
                          "failed" if s.status == "expired" else "open")
                found.append(ProviderPayment(s.id, from_minor(s.amount_total or 0, s.currency
                                                              or "usd"), status,
                                             datetime.fromtimestamp(s.created, UTC)))
        except stripe.StripeError as err:
            raise ProviderError(f"Stripe did not list checkout sessions: "
                                f"{err.user_message or err.__class__.__name__}") from err
        return found

    async def list_refunds(self, since: datetime, until: datetime) -> list[ProviderPayment]:
        found: dict[str, ProviderPayment] = {}
        try:
            page = await self.client.v1.refunds.list_async({
                "created": {"gte": int(since.timestamp()), "lt": int(until.timestamp())},
                "limit": 100})
            async for r in page.auto_paging_iter():
                if r.status not in ("succeeded", "pending") or not r.payment_intent:
                    continue  # failed or canceled: the money stayed
                intent = r.payment_intent if isinstance(r.payment_intent, str) \
                    else r.payment_intent.id
                checkout = await self.checkout_of(intent)
                if checkout is None:
                    continue  # not a payment through one of our checkouts
                amount = from_minor(r.amount, r.currency)
                if checkout in found:  # refunded in parts: one line with the sum
                    amount = Money.of(found[checkout].amount.amount + amount.amount,
                                      amount.currency)
                found[checkout] = ProviderPayment(checkout, amount, "refunded",
                                                  datetime.fromtimestamp(r.created, UTC))
        except stripe.StripeError as err:
            raise ProviderError(f"Stripe did not list refunds: "
                                f"{err.user_message or err.__class__.__name__}") from err
        return list(found.values())

    async def checkout_of(self, external_id: str) -> str | None:
        """The session holding payment intent `external_id`, when we created it (its
        metadata names a loan and a case)."""
        try:
            page = await self.client.v1.checkout.sessions.list_async({
                "payment_intent": external_id, "limit": 10})
        except stripe.StripeError as err:
            raise ProviderError(f"Stripe did not say which checkout session holds payment "
                                f"intent {external_id}: "
                                f"{err.user_message or err.__class__.__name__}") from err
        for s in page.data:
            meta = s.metadata.to_dict() if s.metadata else {}
            if meta.get("loan_id") and meta.get("case_id"):
                return str(s.id)
        return None

    def checkout_origin(self) -> str | None:
        return "https://checkout.stripe.com"


def _a_payment(session: dict[str, Any]) -> bool:
    """A Checkout Session that takes a one-off amount - the only kind we create; every
    other event on the account (setup or subscription sessions) has no amount of ours."""
    return session.get("mode", "payment") == "payment" and \
        session.get("amount_total") is not None and bool(session.get("currency"))

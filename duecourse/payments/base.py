"""The contract every payment provider adapter meets.

A provider creates a hosted checkout for an amount, tells us the outcome in a signed
webhook, and lists its payments for reconciliation. Adapters never touch the loan: the
webhook route (duecourse.api.routes.payments) turns a verified `paid` event into a
PaymentReport idempotent by the provider's reference; `failed` and `refunded` events are
recorded and never reduce a balance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from duecourse.domain.money import Money


class EventKind(StrEnum):
    PAID = "paid"
    FAILED = "failed"
    REFUNDED = "refunded"
    PENDING = "pending"  # finished by the borrower, the money still on its way: the
    # provider's other id for it (Stripe: the payment intent) is remembered, nothing else


class BadSignature(ValueError):
    """A webhook whose signature does not verify: refused, nothing recorded."""


class ProviderError(RuntimeError):
    """The provider could not create a checkout or list payments (say which and why)."""


@dataclass(frozen=True)
class Checkout:
    """A hosted checkout the borrower is sent to: the provider's id for it and its page."""

    id: str
    url: str


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook: what happened to which checkout (`reference`), for how much."""

    kind: EventKind
    reference: str
    amount: Money
    at: datetime
    external_id: str | None = None  # the provider's other id for it (Stripe: the intent)


@dataclass(frozen=True)
class ProviderPayment:
    """One checkout as the provider sees it (reconciliation): status is an EventKind or
    `open` while the borrower has not finished."""

    reference: str
    amount: Money
    status: str
    at: datetime


class PaymentProvider(Protocol):
    name: str

    async def create_checkout(self, loan_id: str, case_id: str, amount: Money,
                              return_url: str) -> Checkout: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent | None:
        """The verified event, None for one of a kind we do not act on; BadSignature
        when the signature is missing, wrong or stale."""
        ...

    async def list_payments(self, since: datetime, until: datetime) -> list[ProviderPayment]:
        """The checkouts created in [since, until)."""
        ...

    async def list_refunds(self, since: datetime, until: datetime) -> list[ProviderPayment]:
        """The refunds made in [since, until), one per checkout (reference: the checkout's
        id, status `refunded`, at: when it was refunded)."""
        ...

    async def checkout_of(self, external_id: str) -> str | None:
        """The id of the checkout of ours that the provider's other id (Stripe: a payment
        intent) belongs to; None when no checkout of ours has it; ProviderError when the
        provider cannot be asked."""
        ...

    def checkout_origin(self) -> str | None:
        """The origin of the provider's checkout pages when not ours (the portal's
        Content-Security-Policy must allow a form posted to us to redirect there)."""
        ...


def ledger_reference(provider: str, checkout_id: str) -> str:
    """The payment reference the loan receives: the provider's name and its checkout id,
    so a webhook delivered twice is one payment (the engine dedups by reference)."""
    return f"{provider}:{checkout_id}"

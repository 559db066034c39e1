"""The embedded sandbox provider: a pretend payment service inside our own API, so the
demo pays end to end with no account anywhere.

Its checkout page (`/sandbox-pay/{id}`, duecourse.api.routes.payments) offers Pay and
Fail (and Refund once paid); pressing one posts a webhook signed like a real provider's
(`Sandbox-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`) to our webhook
endpoint. The provider's own books are a JSON-lines file under data_dir (what
`list_payments` reads for reconciliation), separate from our ledger on purpose: the two
can disagree, as they can with a real provider. For development and demos only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from duecourse.domain.money import Money
from duecourse.payments.base import (
    BadSignature,
    Checkout,
    EventKind,
    ProviderEvent,
    ProviderPayment,
)

HEADER = "sandbox-signature"
TOLERANCE = timedelta(minutes=5)
_LOCK = threading.Lock()


@dataclass
class SandboxCheckout:
    id: str
    loan_id: str
    case_id: str
    amount: Money
    status: str
    at: datetime
    return_url: str


class SandboxProvider:
    """Checkouts kept in `books` (JSON lines, the last line per id wins)."""

    name = "sandbox"

    def __init__(self, secret: bytes, public_url: str, books: Path) -> None:
        self.secret = secret  # signs its webhooks (the endpoint's shared secret)
        # the checkout page's CSRF values use a key of their own, derived with a label, so
        # no value the page hands out is ever made with the webhook signing key
        self._csrf_key = hmac.new(secret, b"duecourse sandbox checkout csrf",
                                  hashlib.sha256).digest()
        self.public_url = public_url.rstrip("/")
        self.books = books

    # ---------------------------------------------------------------- the contract
    async def create_checkout(self, loan_id: str, case_id: str, amount: Money,
                              return_url: str) -> Checkout:
        checkout = SandboxCheckout(f"sbx_{secrets.token_urlsafe(18)}", loan_id, case_id,
                                   amount, "open", datetime.now(UTC), return_url)
        self._write(checkout)
        return Checkout(checkout.id, f"{self.public_url}/sandbox-pay/{checkout.id}")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent | None:
        header = {k.lower(): v for k, v in headers.items()}.get(HEADER, "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            sent = datetime.fromtimestamp(int(parts.get("t", "")), UTC)
        except ValueError:
            raise BadSignature("the Sandbox-Signature header is missing or has no time") \
                from None
        if abs(datetime.now(UTC) - sent) > TOLERANCE:
            raise BadSignature("the Sandbox-Signature is older than five minutes")
        if not hmac.compare_digest(self._mac(parts["t"], body), parts.get("v1", "")):
            raise BadSignature("the Sandbox-Signature does not match the body")
        try:
            doc = json.loads(body)
            return ProviderEvent(EventKind(doc["kind"]), str(doc["checkout"]),
                                 Money.of(doc["amount"], doc["currency"]),
                                 datetime.fromisoformat(doc["at"]))
        except (KeyError, ValueError, TypeError) as err:
            raise BadSignature(f"the signed sandbox event is malformed: {err}") from err

    async def list_payments(self, since: datetime, until: datetime) -> list[ProviderPayment]:
        return [ProviderPayment(c.id, c.amount, c.status, c.at)
                for c in self._all().values() if since <= c.at < until]

    async def list_refunds(self, since: datetime, until: datetime) -> list[ProviderPayment]:
        return [ProviderPayment(c.id, c.amount, c.status, c.at)
                for c in self._all().values()
                if c.status == "refunded" and since <= c.at < until]

    async def checkout_of(self, external_id: str) -> str | None:
        return None  # every sandbox event names its checkout

    def checkout_origin(self) -> str | None:
        return None  # our own API serves the page

    # ---------------------------------------------------------------- the pretend service
    def get(self, checkout_id: str) -> SandboxCheckout | None:
        return self._all().get(checkout_id)

    def csrf_for(self, checkout_id: str) -> str:
        return hmac.new(self._csrf_key, f"csrf:{checkout_id}".encode(),
                        hashlib.sha256).hexdigest()

    def settle(self, checkout_id: str, kind: EventKind,
               now: datetime | None = None) -> tuple[dict[str, str], bytes]:
        """Move the checkout in the provider's books and return the signed webhook (headers,
        body) it sends. Paying again re-sends the same event, as real providers retry."""
        checkout = self.get(checkout_id)
        if checkout is None:
            raise LookupError(f"no sandbox checkout {checkout_id}")
        now = now or datetime.now(UTC)
        if checkout.status != kind.value:
            checkout.status, checkout.at = kind.value, now
            self._write(checkout)
        body = json.dumps({"kind": kind.value, "checkout": checkout.id,
                           "amount": str(checkout.amount.amount),
                           "currency": checkout.amount.currency,
                           "at": checkout.at.isoformat()}).encode()
        return self.sign(body, now), body

    def sign(self, body: bytes, now: datetime) -> dict[str, str]:
        stamp = str(int(now.timestamp()))
        return {"Sandbox-Signature": f"t={stamp},v1={self._mac(stamp, body)}",
                "Content-Type": "application/json"}

    def _mac(self, stamp: str, body: bytes) -> str:
        return hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()

    def _write(self, c: SandboxCheckout) -> None:
        line = json.dumps({"id": c.id, "loan_id": c.loan_id, "case_id": c.case_id,
                           "amount": str(c.amount.amount), "currency": c.amount.currency,
                           "status": c.status, "at": c.at.isoformat(),
                           "return_url": c.return_url})
        with _LOCK:
            self.books.parent.mkdir(parents=True, exist_ok=True)
            with self.books.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

    def _all(self) -> dict[str, SandboxCheckout]:
        if not self.books.exists():
            return {}
        found: dict[str, SandboxCheckout] = {}
        with _LOCK:
            lines = self.books.read_text(encoding="utf-8").splitlines()
        for line in lines:
            d: dict[str, Any] = json.loads(line)
            found[d["id"]] = SandboxCheckout(
                d["id"], d["loan_id"], d["case_id"],
                Money.of(Decimal(d["amount"]), d["currency"]), d["status"],
                datetime.fromisoformat(d["at"]), d["return_url"])
        return found

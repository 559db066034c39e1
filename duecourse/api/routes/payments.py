"""Payments through a provider: its signed webhooks, the sandbox's checkout page, and the
borrower page's pay section.

`POST /v1/payments/webhooks/{provider}`: no API key, the provider's signature is the
authority (a missing or wrong one is 401, nothing recorded). A paid event reaches the
loan once, by the provider's reference; the answer is 200 with what became of it, 503
when the engine could not confirm it or the provider could not be asked which checkout a
refund is for, and 409 for a refund of a checkout of ours the ledger has no row for yet
(in both the provider retries; the reference keeps it to one payment). A refund of a
payment no checkout of ours holds is 200 `unknown`: it is not ours to act on.
`GET /sandbox-pay/{id}` is the embedded sandbox's checkout page (only when
payment_provider is sandbox); its buttons post back with a CSRF value bound to the
checkout, and the sandbox then posts its signed webhook to the endpoint above.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from temporalio.service import RPCError

from duecourse.api.problems import ProblemError, responses
from duecourse.api.services import Svc
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.money import Money
from duecourse.payments.base import BadSignature, EventKind, PaymentProvider, ProviderError
from duecourse.payments.flow import Unresolved, receive, start_checkout
from duecourse.payments.providers import PaymentSettingsError, provider_from_settings
from duecourse.payments.sandbox import SandboxProvider
from duecourse.portal.tokens import PortalSigner

log = structlog.get_logger(__name__)
router = APIRouter(tags=["payments"])
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parents[2] / "payments"
                                                / "templates"),
                        autoescape=select_autoescape(default=True))
SANDBOX_HEADERS = {
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
MOVES = {EventKind.PAID: ("open", "failed"), EventKind.FAILED: ("open",),
         EventKind.REFUNDED: ("paid",)}
"""Which sandbox button acts from which status of its checkout."""


def provider_of(app: FastAPI) -> PaymentProvider | None:
    """The app's provider, made once from its settings (None: payments are off, or a
    setting is missing - said once in the log; the borrower's page then offers no payment
    rather than failing)."""
    state = app.state
    if not hasattr(state, "payment_provider"):
        try:
            state.payment_provider = provider_from_settings(state.services.settings)
        except PaymentSettingsError as err:
            log.error("payments are off", reason=str(err))
            state.payment_provider = None
    return state.payment_provider  # type: ignore[no-any-return]


# ------------------------------------------------------------------ webhooks
WEBHOOK_ANSWERS = responses(404, 409)
WEBHOOK_ANSWERS[409] = {**WEBHOOK_ANSWERS[409], "description": "A refund of a checkout the "
                        "ledger does not hold yet: deliver it again later"}
WEBHOOK_ANSWERS[503] = {**WEBHOOK_ANSWERS[503], "description": "The collection engine or "
                        "the payment provider could not confirm it: deliver it again"}


@router.post("/v1/payments/webhooks/{name}", summary="A payment provider's signed event",
             responses=WEBHOOK_ANSWERS)
async def webhook(name: str, request: Request, svc: Svc) -> dict[str, str]:
    provider = provider_of(request.app)
    if provider is None or provider.name != name:
        raise ProblemError(404, "Not found", f"no payment provider {name!r} is configured")
    try:
        event = provider.parse_webhook(dict(request.headers), await request.body())
    except BadSignature as err:
        raise ProblemError(401, "Unauthenticated", str(err)) from err
    if event is None:
        return {"outcome": "ignored"}
    try:
        got = await receive(provider, event, svc.ledger, svc.client)
    except RPCError as err:
        raise ProblemError(503, "Engine unavailable", "the payment could not be confirmed "
                           "on the loan yet; deliver the event again (it is applied at "
                           "most once)") from err
    except ProviderError as err:
        raise ProblemError(503, "Provider unavailable", "the refund's checkout could not be "
                           f"looked up at {name}; deliver the event again ({err})") from err
    except Unresolved as err:
        raise ProblemError(409, "Checkout not recorded yet", f"{err}; deliver the event "
                           "again later") from err
    return {"outcome": got.outcome}


# ------------------------------------------------------------------ the sandbox's page
def _sandbox(request: Request) -> SandboxProvider | None:
    provider = provider_of(request.app)
    return provider if isinstance(provider, SandboxProvider) else None


def _not_found() -> HTMLResponse:
    return HTMLResponse("<!DOCTYPE html><title>Not found</title><p>No such checkout.</p>",
                        status_code=404, headers=SANDBOX_HEADERS)


@router.get("/sandbox-pay/{checkout_id}", include_in_schema=False)
async def sandbox_page(checkout_id: str, request: Request, note: str = "") -> Response:
    sandbox = _sandbox(request)
    checkout = sandbox.get(checkout_id) if sandbox else None
    if sandbox is None or checkout is None:
        return _not_found()
    html = TEMPLATES.get_template("sandbox.html").render(
        id=checkout.id, amount=checkout.amount.amount, currency=checkout.amount.currency,
        status=checkout.status, csrf=sandbox.csrf_for(checkout.id),
        return_url=checkout.return_url)
    return HTMLResponse(html, headers=SANDBOX_HEADERS)


@router.post("/sandbox-pay/{checkout_id}/{kind}", include_in_schema=False)
async def sandbox_settle(checkout_id: str, kind: str, request: Request) -> Response:
    sandbox = _sandbox(request)
    checkout = sandbox.get(checkout_id) if sandbox else None
    if sandbox is None or checkout is None or kind not in MOVES:
        return _not_found()
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    if not hmac.compare_digest((form.get("csrf") or [""])[0], sandbox.csrf_for(checkout_id)):
        return HTMLResponse("<!DOCTYPE html><title>Expired</title><p>This form has expired: "
                            "open the checkout again.</p>", 403, headers=SANDBOX_HEADERS)
    event = EventKind(kind)
    if checkout.status not in MOVES[event] and checkout.status != event.value:
        return RedirectResponse(f"/sandbox-pay/{checkout_id}", 303, headers=SANDBOX_HEADERS)
    headers, body = sandbox.settle(checkout_id, event)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=request.app),
                                 base_url="http://sandbox") as http:
        answer = await http.post(f"/v1/payments/webhooks/{sandbox.name}", content=body,
                                 headers=headers)
    if answer.status_code >= 300:  # a provider would retry; here the button sends it again
        log.warning("sandbox webhook refused", status=answer.status_code)
        return RedirectResponse(f"/sandbox-pay/{checkout_id}", 303, headers=SANDBOX_HEADERS)
    target = f"/sandbox-pay/{checkout_id}" if event is EventKind.REFUNDED \
        else checkout.return_url
    return RedirectResponse(target, 303, headers=SANDBOX_HEADERS)


# ------------------------------------------------------------------ the borrower's page
@dataclass(frozen=True)
class PaySection:
    """Pay in full or in part: the full amount as the form's default, the currency."""

    full: str
    currency: str


def pay_section(app: FastAPI, status: CollectionStatus) -> PaySection | None:
    if provider_of(app) is None or status.outstanding.amount <= 0:
        return None
    return PaySection(f"{status.outstanding.amount}", status.outstanding.currency)


def page_headers(app: FastAPI, headers: dict[str, str]) -> dict[str, str]:
    """The page's headers, letting the pay form's redirect reach the provider's checkout."""
    provider = provider_of(app)
    origin = provider.checkout_origin() if provider is not None else None
    if not origin:
        return headers
    csp = headers["Content-Security-Policy"].replace("form-action 'self'",
                                                     f"form-action 'self' {origin}")
    return {**headers, "Content-Security-Policy": csp}


async def pay_from_page(request: Request, token: str, signer: PortalSigner,
                        status: CollectionStatus, form: dict[str, list[str]]) -> str:
    """The checkout URL the borrower goes to; raises ValueError with the words key of
    what is wrong (bad_amount, pay_over, pay_unavailable)."""
    provider = provider_of(request.app)
    found = signer.verify(token, datetime.now(UTC))
    if provider is None or found is None:
        raise ValueError("pay_unavailable")
    outstanding = status.outstanding
    try:
        value = Decimal((form.get("amount") or [""])[0].strip().replace(",", ""))
        amount = Money.of(value, outstanding.currency)
    except (InvalidOperation, ValueError):
        raise ValueError("bad_amount") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("bad_amount")
    if value > outstanding.amount:
        raise ValueError("pay_over")
    svc: Any = request.app.state.services
    back = f"{svc.settings.public_url.rstrip('/')}/b/{token}?done=done_pay"
    try:
        checkout = await start_checkout(provider, svc.ledger.engine, found.loan_id,
                                        found.case_id, amount, back)
    except ProviderError as err:
        log.warning("checkout not created", provider=provider.name, error=str(err))
        raise ValueError("pay_unavailable") from err
    return checkout.url

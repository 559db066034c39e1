"""The borrower's page: `GET /b/{token}` shows it, `POST /b/{token}/{action}` acts.

No API key: the signed link is the authority (duecourse.portal.tokens), checked against
the loan's open case on every request (duecourse.portal.access). A wrong, forged,
tampered, expired or revoked link - or one for a loan that is not in collection - gets
one neutral page with one status (404), in the reader's browser language, saying nothing
of any debt; back from a payment checkout (`?done=done_pay`) such a link gets one neutral
thank-you instead (200), as a payment in full closes the case. Every form carries the
link's signed CSRF value; a post without it is refused (403) and changes nothing.
Requests are limited per link and per client IP (duecourse.portal.guard, in this
process; IPv6 per /64; X-Forwarded-For is believed only from
`portal_trusted_proxies`). A success answers 303 to the page
with a thank-you; a refusal shows the page again (422) with the engine's reason in the
borrower's language. A genuine link while the ledger or the engine cannot answer gets
the same neutral page (404) as a wrong one: a try-again page for it alone would tell a
stranger holding the link that a live debt exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from temporalio.service import RPCError

from duecourse.api.routes import payments as pay
from duecourse.api.services import Services
from duecourse.portal import actions
from duecourse.portal.access import Opened, open_link
from duecourse.portal.guard import PortalGuard, client_ip
from duecourse.portal.i18n import Words, texts
from duecourse.portal.page import DISPUTE_REASONS, HARDSHIP_DAYS, build_view, policy_of
from duecourse.portal.reasons import explain
from duecourse.portal.tokens import PortalSigner, signer_from_settings
from duecourse.temporal.client import LoanClosed, LoanNotFound

router = APIRouter(prefix="/b", include_in_schema=False)
log = structlog.get_logger(__name__)

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parents[2] / "portal"
                                                / "templates"),
                        autoescape=select_autoescape(default=True))
HEADERS = {
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
DONE_KEYS = frozenset(k for k in texts()["en"] if k.startswith("done_"))


class _Portal:
    """The app's signer and rate limits, made once per app."""

    def __init__(self, svc: Services) -> None:
        self.signer: PortalSigner | None = signer_from_settings(svc.settings)
        self.guard = PortalGuard(svc.settings.portal_requests_per_token,
                                 svc.settings.portal_requests_per_ip)
        self.proxies = list(svc.settings.portal_trusted_proxies)


def _portal(request: Request) -> _Portal:
    state = request.app.state
    if getattr(state, "portal", None) is None:
        state.portal = _Portal(state.services)
    return state.portal  # type: ignore[no-any-return]


def _html(template: str, status: int = 200, headers: dict[str, str] = HEADERS,
          **values: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**values),
                        status_code=status, headers=headers)


def _reader_words(request: Request) -> Words:
    """The browser's language, for pages that know no borrower."""
    wanted = request.headers.get("accept-language", "en").split(",")[0].split(";")[0]
    return Words(wanted.strip() or "en")


def _notice(request: Request, kind: str, status: int) -> HTMLResponse:
    w = _reader_words(request)
    return _html("notice.html", status, lang=w.language, title=w(f"{kind}_title"),
                 text=w(f"{kind}_text"))


async def _open(request: Request, token: str) -> tuple[Opened | None, Response | None]:
    portal = _portal(request)
    ip = client_ip(request.client.host if request.client else None,
                   request.headers.getlist("x-forwarded-for"), portal.proxies)
    if not portal.guard.allow(token, ip):
        return None, _notice(request, "limited", 429)
    svc: Services = request.app.state.services
    # every link that cannot be shown - wrong, closed, or genuine while the ledger or the
    # engine is away - gets the same neutral page: a different answer for a genuine link
    # would tell a third party that a debt exists (duecourse.portal.access)
    opened = await open_link(portal.signer, token, datetime.now(UTC), svc.ledger.engine,
                             svc.client)
    return (opened, None) if opened is not None else (None, _notice(request, "neutral", 404))


def _page(request: Request, token: str, opened: Opened, status: int = 200,
          done: str = "", error: str = "") -> HTMLResponse:
    svc: Services = request.app.state.services
    s = svc.settings
    words = Words(str(opened.borrower.get("language") or "en"))
    view = build_view(opened.status, opened.borrower, policy_of(opened.status, s.policy_dir),
                      words, s.lender_name, s.lender_contact)
    view.pay = pay.pay_section(request.app, opened.status)
    signer = _portal(request).signer
    assert signer is not None
    return _html("page.html", status, pay.page_headers(request.app, HEADERS),
                 lang=words.language, title=words("title"), v=view,
                 token=token, csrf=signer.csrf_for(token), done=done, error=error,
                 reasons=DISPUTE_REASONS, hardship_days=HARDSHIP_DAYS)


@router.get("/{token}", response_class=HTMLResponse)
async def show(token: str, request: Request, done: str = "") -> Response:
    opened, refusal = await _open(request, token)
    if opened is None:
        assert refusal is not None
        if done == "done_pay" and refusal.status_code == 404:
            # back from the provider's checkout to a link that no longer opens (a payment
            # in full closed the case, or it was never valid): one thank-you for all, in
            # the reader's language, that says no more than the neutral page
            return _notice(request, "thanks", 200)
        return refusal
    words = Words(str(opened.borrower.get("language") or "en"))
    return _page(request, token, opened, done=words(done) if done in DONE_KEYS else "")


@router.post("/{token}/{action}", response_class=HTMLResponse)
async def act(token: str, action: str, request: Request) -> Response:
    opened, refusal = await _open(request, token)
    if opened is None:
        assert refusal is not None
        return refusal
    signer = _portal(request).signer
    assert signer is not None
    form = parse_qs((await request.body()).decode("utf-8", "replace"),
                    keep_blank_values=True)
    if not signer.csrf_ok(token, (form.get("csrf") or [None])[0]):
        return _notice(request, "csrf", 403)
    if action == "pay":  # to the payment provider's checkout (duecourse.payments)
        try:
            url = await pay.pay_from_page(request, token, signer, opened.status, form)
        except ValueError as err:
            words = Words(str(opened.borrower.get("language") or "en"))
            return _page(request, token, opened, 503 if str(err) == "pay_unavailable"
                         else 422, error=words(str(err)))
        return RedirectResponse(url, status_code=303, headers=HEADERS)
    if action not in actions.ACTIONS:
        return _notice(request, "neutral", 404)
    svc: Services = request.app.state.services
    words = Words(str(opened.borrower.get("language") or "en"))
    view = build_view(opened.status, opened.borrower,
                      policy_of(opened.status, svc.settings.policy_dir), words,
                      svc.settings.lender_name, svc.settings.lender_contact)
    if not actions.offered(action, view):  # not on the page now: as if it did not exist
        return _notice(request, "neutral", 404)
    try:
        outcome = await actions.perform(action, form, svc.client, svc.ledger.engine,
                                        opened.loan_id, view)
    except actions.BadInput as err:
        return _page(request, token, opened, 422, error=words(str(err)))
    except (LoanClosed, LoanNotFound):  # the case closed between the page and this post
        return _notice(request, "neutral", 404)
    except (RPCError, RuntimeError) as err:  # the engine went away after the page opened;
        # only the link's holder reads this (the post carried the page's CSRF value)
        log.warning("portal action not delivered", action=action, error=type(err).__name__)
        return _notice(request, "unavailable", 503)
    if outcome.refused:
        return _page(request, token, opened, 422, error=explain(outcome.refused, words))
    return RedirectResponse(f"/b/{token}?done={outcome.done}", status_code=303,
                            headers=HEADERS)

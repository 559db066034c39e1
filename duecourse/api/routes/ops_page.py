"""GET /ops: the portfolio page for ops and supervisors, in a browser.

A browser cannot send the API's Bearer header when it navigates, and a key in the URL
would end up in history, proxies and logs. So the page asks for the key once, in a form
POSTed to /ops/session, and keeps it in a cookie that is HttpOnly (no script can read it;
the page runs none anyway), sent only to /ops (Path), only from the site's own pages
(SameSite=Strict), only over HTTPS when the page is served over HTTPS (Secure), for
`KEY_HOURS`. Every request checks the key against the key store again, so a revoked key
ends the session at once. Without a live ops or supervisor key the page is the form and
why, never a figure. A sign-in POSTed from another site (its Origin) is refused. Every
response is `no-store` and under a content security policy that allows no script, no
frame and no form target but this site. A script may also send the Bearer header.

The figures are the API's analytics (`duecourse.api.routes.portfolio.portfolio_figures`,
by strategy, with the lender's costs, experiments and scorers), at most `FRESH_SECONDS`
old."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from duecourse.api.routes.portfolio import portfolio_figures
from duecourse.api.services import Svc
from duecourse.domain.actor import Role
from duecourse.lab.figures import PortfolioFigures
from duecourse.lab.report_html import KEY_HOURS, render_key_form, render_ops_page
from duecourse.store.keys import ApiKey

PAGE, SESSION, SIGN_OUT = "/ops", "/ops/session", "/ops/sign-out"
COOKIE = "duecourse_ops_key"
ALLOWED = (Role.OPS, Role.SUPERVISOR)
"""Who oversees the portfolio (the API's `Overseer`s)."""
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make a browser send Origin: null
    "X-Frame-Options": "DENY",
}

FRESH_SECONDS = 30.0
"""Figures this young are shown again rather than computed again: the analytics read the
whole ledger (about a second per thousand cases), and every open page reloads itself."""

router = APIRouter(include_in_schema=False)


@dataclass
class _Latest:
    """The app's latest figures, computed by one request at a time."""

    figures: PortfolioFigures | None = None
    at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _figures(request: Request, svc: Svc) -> PortfolioFigures:
    latest: _Latest | None = getattr(request.app.state, "ops_figures", None)
    if latest is None:
        latest = request.app.state.ops_figures = _Latest()
    async with latest.lock:
        if latest.figures is None or time.monotonic() - latest.at > FRESH_SECONDS:
            latest.figures = await portfolio_figures(svc, by="strategy")
            latest.at = time.monotonic()
        return latest.figures


class Refused(Exception):
    """Why a key may not see the page, in a sentence for the form."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status, self.sentence = status, sentence


async def _overseer(svc: Svc, token: str) -> ApiKey:
    key = await svc.keys.verify(token)
    if key is None:
        raise Refused(401, "That API key is unknown or revoked.")
    if key.platform_disabled_at is not None:
        raise Refused(403, "That key's platform is disabled.")
    if key.role not in ALLOWED:
        raise Refused(403, f"A key of the {key.role.value} role may not see the portfolio; "
                           "use an ops or supervisor key.")
    return key


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE, "")


def _form(status: int, problem: str = "", forget: bool = False) -> HTMLResponse:
    response = HTMLResponse(render_key_form(SESSION, problem), status_code=status,
                            headers=HEADERS)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="duecourse ops"'
    if forget:
        response.delete_cookie(COOKIE, path=PAGE)
    return response


def _same_site(request: Request) -> bool:
    """A POST from a page of this site (no Origin: a client that is not a browser)."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


@router.get(PAGE, response_class=HTMLResponse)
async def page(request: Request, svc: Svc) -> Response:
    """The portfolio now: what needs attention, the KPIs, the live funnel, per strategy."""
    token = _token(request)
    if not token:
        return _form(401)
    try:
        key = await _overseer(svc, token)
    except Refused as refused:
        return _form(refused.status, refused.sentence, forget=True)
    figures = await _figures(request, svc)
    html = render_ops_page(figures, who=f"{key.name} ({key.role.value})",
                           logout_path=SIGN_OUT)
    return HTMLResponse(html, headers=HEADERS)


@router.post(SESSION, response_class=HTMLResponse)
async def sign_in(request: Request, svc: Svc) -> Response:
    """Check the key from the form and keep it in the page's cookie."""
    if not _same_site(request):
        return _form(403, "Sign in from this site's own /ops page.")
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (fields.get("api_key") or [""])[0].strip()
    if not token:
        return _form(401, "Enter an API key (api_key is empty).")
    try:
        await _overseer(svc, token)
    except Refused as refused:
        return _form(refused.status, refused.sentence)
    response = RedirectResponse(PAGE, status_code=303, headers=HEADERS)
    response.set_cookie(COOKIE, token, max_age=KEY_HOURS * 3600, path=PAGE, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post(SIGN_OUT)
async def sign_out(request: Request) -> Response:
    """Forget the key in this browser."""
    response = RedirectResponse(PAGE, status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, path=PAGE)
    return response

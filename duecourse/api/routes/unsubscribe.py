"""One-click unsubscribe (RFC 8058) from the links in our emails' `List-Unsubscribe`.

No API key: the signed token is the authority (duecourse.channels.unsubscribe_tokens),
and it binds a loan and a channel only. `POST` (what a mail client sends, body
`List-Unsubscribe=One-Click`) opts the loan's borrower out of that channel through the
same workflow signal an agent's opt-out uses, recorded as the borrower's own request,
and writes the withdrawal to the consent ledger (source "unsubscribe_link").
`GET` (a person following the link, or a link scanner) changes nothing: it shows a small
page with a button that posts. Pages say nothing about the debt, and an invalid or
tampered token gets the same neutral 404 whatever was wrong with it.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from sqlalchemy import select

from duecourse.api.problems import MEDIA_TYPE, ProblemError
from duecourse.api.services import Services, Svc
from duecourse.channels.unsubscribe_tokens import Unsubscribe, signer_from_settings
from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.compliance.requests import PreferenceChange
from duecourse.domain.policy import Channel
from duecourse.inbound.store import InboundStore
from duecourse.store import tables as t
from duecourse.temporal.client import LoanClosed, LoanNotFound

router = APIRouter(prefix="/v1/unsubscribe", tags=["unsubscribe"])

BORROWER = Actor(kind=ActorKind.BORROWER, id="unsubscribe-link")
"""Who the opt-out is recorded as: the borrower, through the link (the token names no
one, so no borrower id is claimed)."""
NOTE = "one-click unsubscribe"
SOURCE = "unsubscribe_link"
"""The consent ledger's source for a withdrawal by the link."""

_PAGE = Environment(autoescape=True).from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto">
<h1>{{ title }}</h1><p>{{ text }}</p>
{%- if confirm %}
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>
{%- endif %}
</body></html>
""")


PROBLEMS: dict[int | str, dict[str, object]] = {
    code: {"description": why, "content": {MEDIA_TYPE: {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    for code, why in ((400, "The body cannot be read"), (404, "The link is not valid"),
                      (413, "The body is larger than the API accepts"), (422, "Invalid request"),
                      (503, "The collection engine is unavailable"))}
"""The problems the POST can answer (no 401/403: it takes no API key)."""


def _page(title: str, text: str, status: int = 200, confirm: bool = False) -> HTMLResponse:
    return HTMLResponse(_PAGE.render(title=title, text=text, confirm=confirm),
                        status_code=status, headers={"Cache-Control": "no-store",
                                                     "Referrer-Policy": "no-referrer"})


def _allowed(svc: Services, token: str) -> Unsubscribe | None:
    signer = signer_from_settings(svc.settings)
    found = signer.verify(token) if signer is not None else None
    if found is None or found.channel not in {c.value for c in Channel}:
        return None
    return found


async def _withdraw(svc: Services, loan_id: str, channel: Channel) -> None:
    """Record the withdrawal in the consent ledger, as a STOP is. The dedup key names the
    standing it replaces: a second click (consent already withdrawn) and two clicks at
    once write one row; a click after the borrower consented again writes a new one."""
    async with svc.ledger.engine.connect() as conn:
        borrower = (await conn.execute(select(t.loans.c.borrower_id).where(
            t.loans.c.loan_id == loan_id))).scalar()
    if borrower is None:
        return
    store = InboundStore(svc.ledger.engine)
    latest = await store.latest_consent(borrower, channel.value)
    if latest is not None and latest["action"] == "withdrawn":
        return
    after = latest["id"] if latest is not None else 0
    await store.record_consent(borrower, loan_id, channel.value, "withdrawn", SOURCE,
                               BORROWER, NOTE, dedup_key=f"{SOURCE}:{loan_id}:"
                               f"{channel.value}:after:{after}")


def _not_found() -> ProblemError:
    return ProblemError(404, "Link not found", "this unsubscribe link is not valid")


@router.get("/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm_page(token: str, svc: Svc) -> HTMLResponse:
    found = _allowed(svc, token)
    if found is None:
        return _page("Link not found", "This unsubscribe link is not valid.", 404)
    return _page("Unsubscribe", f"Stop receiving {found.channel} messages from us about "
                 "this account?", confirm=True)


@router.post("/{token}", response_class=HTMLResponse, responses=PROBLEMS)
async def unsubscribe(token: str, svc: Svc) -> HTMLResponse:
    """Opt out of the channel the link was sent on; a loan whose collection ended sends
    nothing more anyway, so it is confirmed too."""
    found = _allowed(svc, token)
    if found is None:
        raise _not_found()
    channel = Channel(found.channel)
    change = PreferenceChange(opt_out=[channel], actor=BORROWER, note=NOTE)
    try:
        await svc.client.update_contact_preferences(found.loan_id, change)
    except LoanClosed:
        pass
    except LoanNotFound:
        raise _not_found() from None
    await _withdraw(svc, found.loan_id, channel)
    return _page("Unsubscribed", f"You will not receive further {channel.value} messages "
                 "from us about this account.")

"""The borrower's actions from the page, each through the same workflow update or signal
an agent's uses (so the engine's validators judge it and its refusal is the reason shown).

The actor is always PORTAL_ACTOR: kind `borrower`, id `portal` - the audit reads
"borrower:portal" for everything done on the page (the link names no one, so no borrower
id is claimed), and each note says it came from the borrower's page.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.agreements import terms
from duecourse.domain.case import commands
from duecourse.domain.compliance import requests
from duecourse.domain.compliance.model import HoldKind
from duecourse.domain.money import MAX_WHOLE_DIGITS, Money, check_scale
from duecourse.domain.policy import Channel
from duecourse.domain.work.breathing import BreathingSpaceAsk
from duecourse.domain.work.callbacks import CallbackRequest
from duecourse.inbound.store import InboundStore
from duecourse.portal.page import DISPUTE_REASONS, HARDSHIP_DAYS, PageView
from duecourse.store import tables as t
from duecourse.temporal.client import ActionRejected, CollectionClient, LoanClosed, LoanNotFound

PORTAL_ACTOR = Actor(kind=ActorKind.BORROWER, id="portal")
NOTE = "by the borrower on their page"
CONSENT_SOURCE = "portal"
"""The consent ledger's source for an opt-out made on the page."""
DISPUTE_WORDS = {"not_mine": "not mine: the borrower says the debt is not theirs",
                 "already_paid": "already paid: the borrower says they have paid",
                 "wrong_amount": "wrong amount: the borrower says the amount is wrong"}
MAX_AMOUNT_CHARS = 32
"""A typed amount longer than this is not an amount (a 15-digit balance with decimals and
commas fits easily)."""
ACTIONS = ("promise", "plan", "settle", "hardship", "breathing-space", "dispute",
           "callback", "preferences")

Form = dict[str, list[str]]


@dataclass(frozen=True)
class Outcome:
    """`done`: the key of the thank-you text; else `refused` is the sentence to show."""

    done: str = ""
    refused: str = ""


class BadInput(ValueError):
    """A field the borrower filled in wrongly; the message is a key of the page's words."""


def _one(form: Form, name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


async def perform(action: str, form: Form, client: CollectionClient, engine: AsyncEngine,
                  loan_id: str, view: PageView) -> Outcome:
    """Do `action`; BadInput for a field filled in wrongly (nothing sent)."""
    try:
        if action == "promise":
            return await _promise(form, client, loan_id, view)
        if action == "plan":
            return await _plan(form, client, loan_id, view)
        if action == "settle":
            return await _settle(form, client, loan_id, view)
        if action == "hardship":
            await client.hold(loan_id, requests.HoldRequest(
                action="start", kind=HoldKind.HARDSHIP, days=HARDSHIP_DAYS,
                actor=PORTAL_ACTOR, note=NOTE))
            return Outcome(done="done_hardship")
        if action == "breathing-space":  # a request: only the Insolvency Service registers
            await client.request_breathing_space(loan_id, BreathingSpaceAsk(
                actor=PORTAL_ACTOR, note=NOTE))
            return Outcome(done="done_breathing")
        if action == "dispute":
            return await _dispute(form, client, loan_id)
        if action == "callback":
            return await _callback(form, client, loan_id, view)
        if action == "preferences":
            return await _preferences(form, client, engine, loan_id, view)
    except ActionRejected as err:
        return Outcome(refused=str(err))
    raise BadInput("bad_choice")


def offered(action: str, view: PageView) -> bool:
    """Whether the page offers `action` now (what it does not offer is refused like an
    unknown action, whatever was posted)."""
    return {"promise": view.promise_latest is not None, "plan": bool(view.plans),
            "settle": bool(view.settlements), "hardship": view.hardship,
            "breathing-space": view.breathing_space, "dispute": view.disputable,
            "callback": view.callback, "preferences": bool(view.opt_out)}.get(action, False)


def parse_amount(text: str, currency: str, most: Decimal) -> Decimal:
    """An amount the borrower typed: a plain number (thousands commas allowed) above
    zero, no finer than the currency's minor unit and at most `most`; else BadInput
    with the sentence to show (never a 500 for `1e20`, `NaN` or 40 digits)."""
    text = text.replace(",", "").strip()
    if not text or len(text) > MAX_AMOUNT_CHARS:
        raise BadInput("bad_amount")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise BadInput("bad_amount") from None
    if not amount.is_finite() or amount <= 0 or amount.adjusted() >= MAX_WHOLE_DIGITS:
        raise BadInput("bad_amount")
    if amount > most:
        raise BadInput("bad_amount_over")
    try:
        return check_scale(amount, currency)
    except ValueError:
        raise BadInput("bad_amount_digits") from None


async def _promise(form: Form, client: CollectionClient, loan_id: str,
                   view: PageView) -> Outcome:
    amount = parse_amount(_one(form, "amount"), view.currency, view.balance)
    try:
        due = date.fromisoformat(_one(form, "date"))
    except ValueError:
        raise BadInput("bad_date") from None
    await client.promise_to_pay(loan_id, commands.PromiseRequest(
        amount=Money(amount=amount, currency=view.currency), due_date=due,
        actor=PORTAL_ACTOR, note=NOTE))
    return Outcome(done="done_promise")


async def _plan(form: Form, client: CollectionClient, loan_id: str,
                view: PageView) -> Outcome:
    chosen = next((p for p in view.plans if str(p.count) == _one(form, "option")), None)
    if chosen is None:  # computed again now: what the page offered, never what was posted
        raise BadInput("bad_choice")
    await client.propose_plan(loan_id, terms.PlanProposal(actor=PORTAL_ACTOR, note=NOTE,
                              instalments=[terms.InstalmentSpec(
                                  due_date=d, amount=Money(amount=a, currency=view.currency))
                                  for d, a in chosen.instalments]))
    return Outcome(done="done_plan")


async def _settle(form: Form, client: CollectionClient, loan_id: str,
                  view: PageView) -> Outcome:
    chosen = next((s for s in view.settlements if s.kind == _one(form, "option")), None)
    if chosen is None:
        raise BadInput("bad_choice")
    result = await client.offer_settlement(loan_id, terms.SettlementOffer(
        amount=Money(amount=chosen.amount, currency=view.currency), pay_by=chosen.pay_by,
        actor=PORTAL_ACTOR, note=NOTE))
    return Outcome(done="done_settle_review" if result.needs_approval else "done_settle")


async def _dispute(form: Form, client: CollectionClient, loan_id: str) -> Outcome:
    reason = _one(form, "reason")
    if reason not in DISPUTE_REASONS:
        raise BadInput("bad_reason")
    # a form the borrower submits is a dispute in writing (electronic communication)
    await client.dispute(loan_id, requests.DisputeChange(
        action="opened", reason=DISPUTE_WORDS[reason], written=True, actor=PORTAL_ACTOR))
    return Outcome(done="done_dispute")


async def _callback(form: Form, client: CollectionClient, loan_id: str,
                    view: PageView) -> Outcome:
    """A call task at the borrower's chosen local time; the engine judges that time."""
    try:
        day, at = date.fromisoformat(_one(form, "date")), time.fromisoformat(_one(form, "time"))
    except ValueError:
        raise BadInput("bad_time") from None
    when = datetime.combine(day, at, tzinfo=ZoneInfo(view.timezone))
    await client.request_callback(loan_id, CallbackRequest(at=when, actor=PORTAL_ACTOR,
                                                           note=NOTE))
    return Outcome(done="done_callback")


async def _preferences(form: Form, client: CollectionClient, engine: AsyncEngine,
                       loan_id: str, view: PageView) -> Outcome:
    wanted = set(form.get("opt_out") or [])
    channels = [c for c in view.opt_out if c.value in wanted]
    if not channels or len(channels) != len(wanted):
        raise BadInput("bad_channels")
    change = requests.PreferenceChange(opt_out=channels, actor=PORTAL_ACTOR, note=NOTE)
    await client.update_contact_preferences(loan_id, change)
    borrower = await _withdraw(engine, loan_id, channels)
    if borrower is not None:  # the borrower's word: their other open loans stop too
        for other in await InboundStore(engine).open_loans(borrower):
            if other != loan_id:
                with contextlib.suppress(LoanClosed, LoanNotFound):
                    await client.update_contact_preferences(other, change)
    return Outcome(done="done_prefs")


async def _withdraw(engine: AsyncEngine, loan_id: str, channels: list[Channel]
                    ) -> str | None:
    """The opt-out in the consent ledger too (the borrower's standing for later loans);
    the dedup key names the standing it replaces, so a repeated post writes one row.
    Returns the borrower's id (None: the loan is not in the ledger)."""
    async with engine.connect() as conn:
        borrower = (await conn.execute(select(t.loans.c.borrower_id).where(
            t.loans.c.loan_id == loan_id))).scalar()
    if borrower is None:
        return None
    store = InboundStore(engine)
    for channel in channels:
        latest = await store.latest_consent(borrower, channel.value)
        if latest is not None and latest["action"] == "withdrawn":
            continue
        after = latest["id"] if latest is not None else 0
        await store.record_consent(borrower, loan_id, channel.value, "withdrawn",
                                   CONSENT_SOURCE, PORTAL_ACTOR, NOTE,
                                   dedup_key=f"{CONSENT_SOURCE}:{loan_id}:{channel.value}:"
                                   f"after:{after}")
    return borrower

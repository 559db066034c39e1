"""What the borrower's page shows and offers now, from the loan's status and its policy.

Only what the engine would accept is offered: no promise, plan or settlement while one is
running, none in the legal stage except a settlement; plan and settlement options are
computed inside the policy's limits (`duecourse.portal.plans`); a call back is offered
while none is booked (the engine judges the chosen time); breathing space (GB) while
none is registered or asked for. A post for anything not offered now is refused like
an unknown action (duecourse.portal.actions `offered`). The borrower's data shown
is the least that helps: the balance, a masked phone, never the address or the email.
Payment (issue 15 item 3): `pay` is set by the route (duecourse.api.routes.payments
`pay_section`) when a payment provider is configured and something is owed; None: the
template shows nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from duecourse.domain.case.state import Stage
from duecourse.domain.case.status import CollectionStatus
from duecourse.domain.policy import Channel, Policy, Segment
from duecourse.domain.work.breathing import SUBJECT as BREATHING_SUBJECT
from duecourse.policies import load_policy
from duecourse.portal.i18n import Words
from duecourse.portal.plans import (
    PlanOption,
    SettlementOption,
    plan_options,
    settlement_options,
)

HARDSHIP_DAYS = 30
"""The hold a borrower's own hardship report asks for (an agent reviews it)."""
DISPUTE_REASONS = ("not_mine", "already_paid", "wrong_amount")
OPTOUT_CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.VOICE, Channel.LETTER)
CONTACT_ACTIONS = ("contact", "end_reminder", "end_negotiation")


@dataclass
class PageView:
    words: Words
    lender_name: str
    lender_contact: str
    outstanding: str
    currency: str
    balance: Decimal
    days_past_due: int
    today: date
    next_text: str
    timezone: str = "UTC"
    callback: bool = False
    current: list[str] = field(default_factory=list)
    paused: str | None = None
    phone: str | None = None
    promise_latest: date | None = None
    promise_default: str = ""
    plans: list[PlanOption] = field(default_factory=list)
    settlements: list[SettlementOption] = field(default_factory=list)
    hardship: bool = False
    breathing_space: bool = False
    disputable: bool = False
    opt_out: list[Channel] = field(default_factory=list)
    pay: Any = None  # the pay section (routes.payments.PaySection) when a provider is on


def masked_phone(phones: list[str]) -> str | None:
    """The first phone number with all but its last two digits hidden."""
    if not phones:
        return None
    digits = [c for c in phones[0] if c.isdigit()]
    return "•" * max(len(digits) - 2, 3) + "".join(digits[-2:])


def policy_of(status: CollectionStatus, policy_dir: str | None) -> Policy | None:
    """The loan's policy when the bundled or configured file is the version the loan runs
    on; None otherwise (then no options are computed: the engine's terms may differ)."""
    name, _, version = status.policy.partition("@")
    try:
        policy = load_policy(name, policy_dir)
    except (LookupError, ValueError):
        return None
    return policy if not version or policy.version == version else None


def build_view(status: CollectionStatus, borrower: dict[str, Any], policy: Policy | None,
               words: Words, lender_name: str, lender_contact: str) -> PageView:
    tz = ZoneInfo(str(borrower.get("timezone") or "UTC"))
    today = status.as_of.astimezone(tz).date()
    money, currency = status.outstanding.amount, status.outstanding.currency
    view = PageView(words=words, lender_name=lender_name, lender_contact=lender_contact,
                    outstanding=words.money(money, currency), currency=currency,
                    balance=money,
                    days_past_due=status.days_past_due, today=today, timezone=str(tz),
                    next_text=_next(status, words, tz),
                    phone=masked_phone([str(p) for p in borrower.get("phones") or []]))
    view.current = _current(status, words)
    if status.frozen:
        view.paused = words("paused", why=status.frozen.partition(": ")[2] or status.frozen)
    busy = bool(view.current)
    legal = status.stage == Stage.LEGAL
    if policy is not None and not busy and money > 0:
        if not legal:
            limit = (policy.promise.max_days_ahead_after_broken if status.broken_promises
                     else policy.promise.max_days_ahead)
            view.promise_latest = date.fromordinal(today.toordinal() + limit)
            view.promise_default = f"{money}"
            segment = Segment(status.segment) if status.segment in set(Segment) else None
            cap = policy.treatment(segment).max_instalments
            max_n = min(policy.plans.max_instalments, cap or policy.plans.max_instalments)
            view.plans = plan_options(money, policy.plans, max_n, today, currency)
        view.settlements = settlement_options(money, policy.settlements, today, currency)
    holds = {h.kind for h in status.standing.holds if h.covers(status.as_of)}
    view.hardship = "hardship" not in holds
    view.breathing_space = status.jurisdiction.upper().startswith("GB") and \
        "breathing_space" not in holds and not any(
            str(t.kind) == "review_moratorium" and t.subject == BREATHING_SUBJECT
            for t in status.open_tasks)
    view.disputable = status.standing.dispute_opened_at is None
    view.callback = view.phone is not None and not any(
        str(t.kind) == "call_borrower" and t.subject == "callback" for t in status.open_tasks)
    view.opt_out = [c for c in OPTOUT_CHANNELS if c not in status.standing.opted_out]
    return view


def _when(status_time: Any, words: Words, tz: ZoneInfo) -> str:
    return words.day(status_time.astimezone(tz).date())


def _next(status: CollectionStatus, words: Words, tz: ZoneInfo) -> str:
    action = status.next_action
    if action is None:
        return words("next_none")
    key = "next_contact" if str(action.kind) in CONTACT_ACTIONS else "next_step"
    return words(key, when=_when(action.due_at, words, tz))


def _current(status: CollectionStatus, words: Words) -> list[str]:
    """The arrangement in force, in the borrower's words (empty: none)."""
    currency = status.outstanding.currency
    lines = []
    if (p := status.active_promise) is not None:
        lines.append(words("promise_active", amount=words.money(p.amount, p.currency),
                           date=words.day(p.due_date)))
    plan = status.plan
    if plan is not None and str(plan.status) == "ACTIVE":
        due = next((i for i in plan.instalments if i.remaining > 0), None)
        if due is not None:
            lines.append(words("plan_active", amount=words.money(due.remaining, currency),
                               date=words.day(due.due_date)))
    st = status.settlement
    if st is not None and str(st.status) in ("PENDING_APPROVAL", "ACCEPTED"):
        lines.append(words("settlement_active", amount=words.money(st.amount, st.currency),
                           status=words(f"status_{str(st.status).lower()}")))
    return lines

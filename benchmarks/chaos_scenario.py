"""The chaos proof's plan (`benchmarks/chaos.py`): what happens to whom and when.

One seed drives it all: the loans (borrowers in CN, US and GB, each in a zone where it is
daytime), a behaviour per loan, the faults at seeded moments of the chaos window, and the
borrowers' actions, about 40 % of them placed inside a fault window on purpose.

Imported by `chaos.py`, which puts the repo root on `sys.path` first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from chaos_checks import FaultWindow
from chaos_rig import RigError

from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.calendar import local_date
from duecourse.domain.case.commands import PaymentReport
from duecourse.domain.compliance.requests import DisputeChange, PreferenceChange
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel
from tests.factories import daytime_zone

AGENT = Actor(kind=ActorKind.AGENT, id="agent-chaos")
JURISDICTIONS = {"CN": ("CNY", "zh-CN"), "US": ("USD", "en"), "GB": ("GBP", "en")}
NATURAL_ZONES = {
    "CN": ("Asia/Shanghai", "Asia/Urumqi"),
    "US": ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
           "America/Anchorage", "Pacific/Honolulu"),
    "GB": ("Europe/London",),
}
BEHAVIOURS = ("pays_full", "partial_then_full", "partial_only", "dispute_verified",
              "opts_out_sms", "ceases", "never_pays")


@dataclass
class Action:
    """One thing a platform or agent does to a loan at `at` seconds into the chaos."""

    loan_id: str
    at: float
    kind: str  # pay | dispute_opened | dispute_verified | opt_out_sms | cease
    label: str
    payload: Any
    in_fault: bool = False  # placed inside a fault window on purpose
    landed_at: float | None = None  # timeline seconds when the server accepted it
    landed_wall: datetime | None = None  # the same instant on the wall clock (UTC)
    result: str = "pending"
    faults: list[FaultWindow] = field(default_factory=list)  # active as it landed
    tries: int = 0


@dataclass
class Fault:
    """A scheduled fault: `at` seconds into the chaos window."""

    kind: str  # kill | restart | outage
    at: float
    length: float
    target: int = 0  # worker index for kills


@dataclass
class Scenario:
    loans: list[LoanIntake]
    behaviour: dict[str, str]
    actions: list[Action]
    faults: list[Fault]
    reported: dict[str, list[PaymentReport]]  # loan -> distinct payments reported


def borrower_zone(jurisdiction: str, now: datetime, index: int) -> str:
    """A zone of the jurisdiction where it is daytime for the whole run, else any zone
    in late morning (tests.factories.daytime_zone): lawful hours must not defer contact
    merely because CI runs at night, yet the packs' hours still apply."""
    fits = [z for z in NATURAL_ZONES[jurisdiction]
            if all(9 <= (now + timedelta(minutes=m)).astimezone(ZoneInfo(z)).hour < 19
                   for m in (0, 20))]
    return fits[index % len(fits)] if fits else daytime_zone(now)


def make_loans(n: int, run: str, now: datetime, rng: random.Random) -> list[LoanIntake]:
    loans = []
    codes = list(JURISDICTIONS)
    for i in range(n):
        jurisdiction = codes[i % len(codes)]
        currency, language = JURISDICTIONS[jurisdiction]
        tz = borrower_zone(jurisdiction, now, i)
        phone = {"CN": f"+86138{rng.randrange(10**8):08d}", "US": f"+1202555{i % 10000:04d}",
                 "GB": f"+447700900{i % 1000:03d}"}[jurisdiction]
        amount = Decimal(rng.randrange(50_000, 500_000)) / 100
        loan_id = f"chaos-{run}-{i + 1:03d}"
        loans.append(LoanIntake(
            loan_id=loan_id,
            borrower={"borrower_id": f"B-{loan_id}", "name": f"Chaos Borrower {i + 1}",
                      "phones": [phone], "email": f"borrower-{run}-{i + 1}@example.com",
                      "address": f"{i + 1} Example Street", "timezone": tz,
                      "language": language},
            jurisdiction=jurisdiction, currency=currency, principal=amount,
            outstanding=amount, due_date=local_date(now, tz) - timedelta(days=3),
            policy="demo"))
    return loans


def plan_faults(rng: random.Random, duration: float, kills: int, outage: float) -> list[Fault]:
    """The outage somewhere in the first two thirds, the restart at least 10 s away from
    it, the kills anywhere (also during the other faults)."""
    if outage > 0 and outage > duration - 40:
        raise RigError(f"--outage-seconds {outage:g} does not fit in --duration "
                       f"{duration:g} (needs at least {outage + 40:g})")
    faults: list[Fault] = []
    start = rng.uniform(0.15 * duration, max(0.15 * duration, min(0.6 * duration,
                                                                  duration - 20 - outage)))
    if outage > 0:
        faults.append(Fault("outage", start, outage))
    for _ in range(200):
        at = rng.uniform(10, duration - 20)
        if outage <= 0 or not start - 12 < at < start + outage + 10:
            break
    faults.append(Fault("restart", at, rng.uniform(3, 8)))
    for at in sorted(rng.uniform(8, duration - 15) for _ in range(kills)):
        faults.append(Fault("kill", at, rng.uniform(2, 6), target=rng.randrange(2)))
    return sorted(faults, key=lambda f: f.at)


def plan_actions(loans: list[LoanIntake], faults: list[Fault], rng: random.Random,
                 duration: float) -> tuple[dict[str, str], list[Action],
                                           dict[str, list[PaymentReport]]]:
    windows = [(f.at, f.at + f.length + (4 if f.kind == "kill" else 0), f.kind)
               for f in faults]

    def moment(lo: float = 12, hi: float | None = None) -> tuple[float, bool]:
        hi = hi if hi is not None else duration - 25
        inside = [(max(a, lo), min(b, hi)) for a, b, kind in windows
                  for _ in range(4 if kind == "outage" else 1) if min(b, hi) > max(a, lo)]
        if inside and rng.random() < 0.4:
            a, b = rng.choice(inside)
            return rng.uniform(a, b), True
        return rng.uniform(lo, max(lo + 1, hi)), False

    order = list(BEHAVIOURS)
    rng.shuffle(order)
    behaviour = {loan.loan_id: order[i % len(order)] for i, loan in enumerate(loans)}
    actions: list[Action] = []
    reported: dict[str, list[PaymentReport]] = {}

    def pay(loan: LoanIntake, amount: Decimal, n: int, at: float, inside: bool,
            label: str) -> None:
        report = PaymentReport(reference=f"PAY-{loan.loan_id[-3:]}-{n}-{rng.randrange(10**6)}",
                               amount=Money.of(amount, loan.currency),
                               paid_at=datetime.now(UTC))
        reported.setdefault(loan.loan_id, []).append(report)
        actions.append(Action(loan.loan_id, at, "pay", label, report, inside))
        again, again_inside = (at + rng.uniform(0.2, 3), inside) if rng.random() < 0.6 \
            else moment(at + 1, duration - 5)
        actions.append(Action(loan.loan_id, again, "pay", f"{label} (re-sent)", report,
                              again_inside))

    for loan in loans:
        kind = behaviour[loan.loan_id]
        full = loan.outstanding
        part = (full * Decimal(str(rng.uniform(0.2, 0.6)))).quantize(Decimal("0.01"))
        t1, inside = moment()
        if kind == "pays_full":
            pay(loan, full, 1, t1, inside, "payment in full")
        elif kind == "partial_then_full":
            pay(loan, part, 1, t1, inside, "partial payment")
            t2, inside2 = moment(t1 + 15, duration - 10)
            pay(loan, full - part, 2, t2, inside2, "payment of the rest")
        elif kind == "partial_only":
            pay(loan, part, 1, t1, inside, "partial payment")
        elif kind == "dispute_verified":
            actions.append(Action(loan.loan_id, t1, "dispute_opened", "dispute opened",
                                  DisputeChange(action="opened", actor=AGENT,
                                                reason="borrower disputes the amount"),
                                  inside))
            t2, inside2 = moment(t1 + 20, min(duration - 5, t1 + 70))
            actions.append(Action(loan.loan_id, t2, "dispute_verified", "dispute verified",
                                  DisputeChange(action="verified", actor=AGENT,
                                                reason="statement of account sent"),
                                  inside2))
        elif kind == "opts_out_sms":
            actions.append(Action(loan.loan_id, t1, "opt_out_sms", "opted out of SMS",
                                  PreferenceChange(opt_out=[Channel.SMS], actor=AGENT),
                                  inside))
        elif kind == "ceases":
            actions.append(Action(loan.loan_id, t1, "cease", "asked to cease communication",
                                  PreferenceChange(cease_communication=True, actor=AGENT),
                                  inside))
    return behaviour, sorted(actions, key=lambda a: a.at), reported


def make_scenario(n: int, run: str, seed: int, duration: float, kills: int,
                  outage: float) -> Scenario:
    rng = random.Random(seed)
    loans = make_loans(n, run, datetime.now(UTC), rng)
    faults = plan_faults(rng, duration, kills, outage)
    behaviour, actions, reported = plan_actions(loans, faults, rng, duration)
    return Scenario(loans, behaviour, actions, faults, reported)

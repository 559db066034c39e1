"""A synthetic portfolio: overdue loans as a platform would hand them over.

Balances, DPD at hand-over, jurisdictions and time zones and the channels held follow
the behaviour file's `portfolio` block; every draw comes from `random.Random(seed)`, so
the same seed yields the same loans. The borrowers are invented (example.com addresses,
numbers in reserved ranges where the country has one).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from duecourse.domain.calendar import local_date
from duecourse.domain.loan import LoanIntake
from duecourse.lab.behaviour import Jurisdiction, Portfolio

CENT = Decimal("0.01")


@dataclass(frozen=True)
class SimLoan:
    """A loan of the portfolio and the DPD band it was drawn in (behaviour reads it)."""

    loan: LoanIntake
    dpd: int


def pick(rng: random.Random, shares: Mapping[str, float]) -> str:
    """One key of `shares`, drawn by its share (keys in file order: stable)."""
    keys = list(shares)
    return rng.choices(keys, weights=[shares[k] for k in keys])[0]


def _phone(rng: random.Random, prefix: str) -> str:
    if prefix == "+86":
        return f"+86138{rng.randrange(10**8):08d}"
    if prefix == "+1":
        return f"+1212555{rng.randrange(10**4):04d}"  # 555: the fictional exchange
    if prefix == "+44":
        return f"+447700900{rng.randrange(10**3):03d}"  # Ofcom's drama range
    return f"{prefix}{rng.randrange(10**9):09d}"


def _amount(rng: random.Random, j: Jurisdiction) -> Decimal:
    low, high = float(j.balance_min), float(j.balance_max)
    return Decimal(str(rng.uniform(low, high))).quantize(CENT)


def make_portfolio(portfolio: Portfolio, n: int, seed: int, start: datetime,
                   prefix: str = "SIM") -> list[SimLoan]:
    """`n` loans overdue at `start` (an aware time), the same for the same seed."""
    rng = random.Random(f"portfolio:{seed}")
    loans: list[SimLoan] = []
    for i in range(n):
        code = pick(rng, {k: j.share for k, j in portfolio.jurisdictions.items()})
        j = portfolio.jurisdictions[code]
        zone = pick(rng, j.zones)
        low, _, high = pick(rng, portfolio.dpd_at_hand_over).partition("-")
        dpd = rng.randint(int(low), int(high))
        held = {ch for ch, share in portfolio.channels_held.items() if rng.random() < share}
        if not held:
            held = {"phone"}  # a borrower with no channel at all is never handed over
        outstanding = _amount(rng, j)
        ratio = rng.uniform(portfolio.outstanding_ratio_min, 1.0)
        principal = max(outstanding, (outstanding / Decimal(str(ratio))).quantize(CENT))
        loan_id = f"{prefix}{seed}-{i + 1:06d}"
        phone = _phone(rng, j.phone_prefix)
        loans.append(SimLoan(loan=LoanIntake(
            loan_id=loan_id,
            borrower={"borrower_id": f"B-{loan_id}", "name": f"Borrower {i + 1}",
                      "phones": [phone] if "phone" in held else [],
                      "email": f"b{i + 1}@example.com" if "email" in held else None,
                      "address": f"{i + 1} Example Street" if "address" in held else None,
                      "timezone": zone, "language": j.language},
            jurisdiction=code, currency=j.currency, principal=principal,
            outstanding=outstanding, product="instalment",
            due_date=local_date(start, zone) - timedelta(days=dpd)), dpd=dpd))
    return loans

"""What the page may offer: instalment plans and settlements computed inside the policy's
limits. The engine's validators still judge every choice; these only spare the borrower
options that would be refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from duecourse.domain.money import minor_units
from duecourse.domain.policy import PlanRules, SettlementRules

CENT = Decimal("0.01")
COUNTS = (2, 3, 4, 6, 9, 12, 18, 24, 36, 48, 60)
FIRST_WITHIN = 7
"""Days from today to a plan's first instalment (or fewer if the policy says so)."""
EVERY = 30
"""Days between instalments (or fewer if the policy says so)."""


def unit(currency: str) -> Decimal:
    """The currency's smallest amount: 0.01 USD, 1 JPY, 0.001 KWD (a cent when unnamed)."""
    return Decimal(1).scaleb(-minor_units(currency)) if currency else CENT


def _engine_minimum(value: Decimal, step_unit: Decimal) -> Decimal:
    """A minimum as the engine computes it (to the cent), rounded up to the currency's
    unit so an option at it is never below the engine's."""
    return value.quantize(CENT).quantize(step_unit, rounding=ROUND_UP)


@dataclass(frozen=True)
class PlanOption:
    count: int
    instalments: tuple[tuple[date, Decimal], ...]

    @property
    def each(self) -> Decimal:
        return self.instalments[0][1]

    @property
    def last(self) -> Decimal:
        return self.instalments[-1][1]


@dataclass(frozen=True)
class SettlementOption:
    kind: str  # "agent": within the agent's limit; "supervisor": a supervisor decides
    amount: Decimal
    pay_by: date


def plan_options(outstanding: Decimal, rules: PlanRules, max_instalments: int,
                 today: date, currency: str = "") -> list[PlanOption]:
    """Equal instalments (the last takes the rounding), 2 up to the policy's maximum, in
    the currency's minor unit (whole yen, thousandths of a dinar); minimums are rounded
    up so an option never falls below the engine's own."""
    if outstanding <= 0:
        return []
    step_unit = unit(currency)
    first = today + timedelta(days=min(FIRST_WITHIN, rules.max_days_to_first_payment))
    step = timedelta(days=min(EVERY, rules.max_interval_days))
    minimum = _engine_minimum(outstanding * rules.min_instalment_ratio, step_unit)
    down = _engine_minimum(outstanding * rules.min_down_payment_ratio, step_unit)
    counts = sorted({n for n in (*COUNTS, max_instalments) if 2 <= n <= max_instalments})
    options = []
    for n in counts:
        each = (outstanding / n).quantize(step_unit, rounding=ROUND_DOWN)
        last = outstanding - each * (n - 1)
        if each <= 0 or each < minimum or each < down or last <= 0:
            continue
        amounts = [each] * (n - 1) + [last]
        options.append(PlanOption(n, tuple((first + step * i, a)
                                           for i, a in enumerate(amounts))))
    return options


def settlement_options(outstanding: Decimal, rules: SettlementRules,
                       today: date, currency: str = "") -> list[SettlementOption]:
    """The agent's deepest reduction, and the policy floor as a request a supervisor
    decides (when it is deeper), in the currency's minor unit (rounded up: never below
    what the engine allows)."""
    if outstanding <= 0 or rules.agent_max_discount <= 0:
        return []
    step_unit = unit(currency)
    pay_by = today + timedelta(days=rules.max_days_to_pay)
    agent = (outstanding * (1 - rules.agent_max_discount)).quantize(step_unit,
                                                                    rounding=ROUND_UP)
    floor = _engine_minimum(outstanding * rules.floor_ratio, step_unit)
    options = []
    if floor <= agent < outstanding:
        options.append(SettlementOption("agent", agent, pay_by))
    if floor < agent and floor < outstanding:
        options.append(SettlementOption("supervisor", floor, pay_by))
    return options

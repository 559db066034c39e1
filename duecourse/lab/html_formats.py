"""How the HTML report and the /ops page write numbers: one place, so a rate, an amount or
a missing figure reads the same in every table and chart description.

A figure that could not be counted (a rate over nothing) is shown as "n/a", never as 0."""

from __future__ import annotations

from decimal import Decimal

from duecourse.lab.figures import Difference, Rate

NA = "n/a"
"""What a figure that could not be counted shows."""


def percent(value: float | Rate | None, digits: int = 1) -> str:
    """0.4123 -> "41.2%"; a Rate shows its value; None (nothing counted) -> n/a."""
    if isinstance(value, Rate):
        value = value.value
    return NA if value is None else f"{value * 100:.{digits}f}%"


def counted(rate: Rate) -> str:
    """The counts behind a rate, so a reader sees how much it rests on: "12 of 40"."""
    return f"{rate.part:,} of {rate.whole:,}"


def number(value: float | int | Decimal | None, digits: int = 1) -> str:
    if value is None:
        return NA
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def money(amount: Decimal | None, currency: str) -> str:
    """Decimal with its currency, to the cent, never through float: "CNY 1,234.50"."""
    if amount is None:
        return NA
    return f"{currency} {amount.quantize(Decimal('0.01')):,}".strip()


def points(value: float | None) -> str:
    """A difference of two rates in percentage points, signed: "+4.1 pts"."""
    return NA if value is None else f"{value * 100:+.1f} pts"


def is_rate_metric(metric: str) -> bool:
    """Recovery and cure differences are rates (points); contacts per loan is a count."""
    return not metric.startswith("contacts")


def metric_label(metric: str) -> str:
    """"recovery_rate:CNY" -> "recovery rate (CNY)"."""
    name, _, currency = metric.partition(":")
    label = name.replace("_", " ")
    return f"{label} ({currency})" if currency else label


def level(d: Difference, value: float | None) -> str:
    """One arm's figure in a comparison: a rate as a percentage, a count as a number."""
    return percent(value) if is_rate_metric(d.metric) else number(value, 2)


def difference(d: Difference) -> str:
    """Challenger minus champion: points for rates, a signed count (and relative change)
    for contacts per loan."""
    if d.difference is None:
        return NA
    if is_rate_metric(d.metric):
        return points(d.difference)
    relative = f" ({d.relative * 100:+.0f}%)" if d.relative is not None else ""
    return f"{d.difference:+.2f}{relative}"


def interval(d: Difference) -> str:
    """The 95% interval in the difference's own unit."""
    if d.ci_low is None or d.ci_high is None:
        return NA
    if is_rate_metric(d.metric):
        return f"{d.ci_low * 100:+.1f} to {d.ci_high * 100:+.1f} pts"
    return f"{d.ci_low:+.2f} to {d.ci_high:+.2f}"

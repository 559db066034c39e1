"""The challenger-against-champion verdict in one plain sentence, from the differences.

Rates are compared in percentage points (45.0% against 40.9% is 4.1 points), never as a
ratio of rates, so "recovers 4.1 points more" cannot be misread; contacts per loan are
compared relatively ("18% fewer contacts per loan"). Each clause says when its 95%
interval includes no difference at all, so a lucky run is not read as a win. The horizon
the arms were compared within is said first: "recovers 4.1 points more" means nothing
without "in the first 90 days after hand-over".
"""

from __future__ import annotations

from duecourse.lab.figures import Difference

RECOVERY = "recovery_rate"
CURE = "cure_rate"
CONTACTS = "contacts_per_loan"


def _points(x: float) -> str:
    return f"{x * 100:.1f}"


def _ci(d: Difference) -> str:
    assert d.ci_low is not None and d.ci_high is not None
    tail = "" if d.significant else ", not significant"
    return f"95% CI {_points(d.ci_low)} to {_points(d.ci_high)} points{tail}"


def _recovery(d: Difference | None) -> str:
    if d is None or d.difference is None or d.ci_low is None:
        return "too few loans to compare recovery"
    assert d.champion is not None and d.challenger is not None
    currency = d.metric.partition(":")[2]
    what = "of the amount handed over" + (f" in {currency}" if currency else "")
    if round(d.difference * 1000) == 0:
        change = f"recovers the same share {what}"
    else:
        more = "more" if d.difference > 0 else "less"
        change = f"recovers {_points(abs(d.difference))} percentage points {more} {what}"
    return (f"{change} ({d.challenger:.1%} against {d.champion:.1%}, {_ci(d)})")


def _cure(d: Difference | None) -> str:
    if d is None or d.difference is None or d.ci_low is None:
        return "too few loans to compare cure rates"
    assert d.champion is not None and d.challenger is not None
    if round(d.difference * 1000) == 0:
        level = "the same"
    else:
        level = f"{_points(abs(d.difference))} points " + (
            "higher" if d.difference > 0 else "lower")
    return f"cures {level} ({d.challenger:.1%} against {d.champion:.1%}, {_ci(d)})"


def _contacts(d: Difference | None) -> str:
    if d is None or d.champion is None or d.challenger is None:
        return "too few loans to compare contacts per loan"
    numbers = f"{d.challenger:.1f} against {d.champion:.1f}"
    if d.relative is None:
        return f"contacts per loan {numbers}"
    tail = "" if d.significant else ", not significant"
    if round(d.relative * 100) == 0:
        return f"as many contacts per loan ({numbers}{tail})"
    fewer = "fewer" if d.relative < 0 else "more"
    return f"{abs(d.relative):.0%} {fewer} contacts per loan ({numbers}{tail})"


def verdict(champion: str, challenger: str, differences: list[Difference],
            horizon_days: int | None = None) -> str:
    """E.g. "challenger against champion in the first 90 days after hand-over: recovers
    4.1 percentage points more of the amount handed over (45.0% against 40.9%, 95% CI 1.2
    to 7.0 points), with 18% fewer contacts per loan (3.3 against 4.0); cures 2.0 points
    higher (...)." (without `horizon_days`, no horizon is named)."""
    by = {d.metric.partition(":")[0]: d for d in differences}
    recovery = next((d for d in differences if d.metric.startswith(RECOVERY)), None)
    within = "" if horizon_days is None else \
        f" in the first {horizon_days} day{'s' if horizon_days != 1 else ''} after hand-over"
    return (f"{challenger} against {champion}{within}: {_recovery(recovery)}, "
            f"with {_contacts(by.get(CONTACTS))}; {_cure(by.get(CURE))}.")

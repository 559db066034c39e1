"""Confidence intervals on challenger-minus-champion differences, in pure Python.

Why these three: a cure rate is a proportion (Newcombe's hybrid score interval on the
difference of two Wilson intervals keeps its coverage near 0 and 1 and with small arms,
where the plain normal interval does not); a recovery rate is the ratio of two sums
(recovered / handed over), so its standard error is the ratio estimator's linearised one,
which agrees with the rate the report shows; contacts per loan is a mean (Welch's
unequal-variance interval). The normal quantile is used throughout: these are large-sample
intervals, approximate for arms of a few dozen loans. Deterministic: no resampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import sqrt

Z95 = 1.959963984540054
"""The two-sided 95% standard normal quantile."""


@dataclass(frozen=True)
class Interval:
    """`estimate` (challenger minus champion) with its 95% bounds."""

    estimate: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n (n > 0)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_difference(k1: int, n1: int, k2: int, n2: int,
                          z: float = Z95) -> Interval | None:
    """p2 - p1 (arm 2 minus arm 1) with Newcombe's hybrid score interval (his method 10);
    None when an arm is empty."""
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p2 - p1
    return Interval(d, d - sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2),
                    d + sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2))


def ratio_and_se(ys: Sequence[float], xs: Sequence[float]) -> tuple[float, float] | None:
    """R = sum(y) / sum(x) and its linearised standard error
    sqrt(sum((y - R x)^2) / (n (n - 1))) / mean(x); None with fewer than 2 units or
    nothing in x."""
    n = len(xs)
    total = sum(xs)
    if n < 2 or total <= 0:
        return None
    r = sum(ys) / total
    residual = sum((y - r * x) ** 2 for y, x in zip(ys, xs, strict=True))
    return r, sqrt(residual / (n * (n - 1))) / (total / n)


def ratio_difference(ys1: Sequence[float], xs1: Sequence[float], ys2: Sequence[float],
                     xs2: Sequence[float], z: float = Z95) -> Interval | None:
    """R2 - R1 of two independent ratio estimators, normal interval."""
    a, b = ratio_and_se(ys1, xs1), ratio_and_se(ys2, xs2)
    if a is None or b is None:
        return None
    d, se = b[0] - a[0], sqrt(a[1] ** 2 + b[1] ** 2)
    return Interval(d, d - z * se, d + z * se)


def mean_and_variance(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (n - 1), n >= 2."""
    n = len(xs)
    m = sum(xs) / n
    return m, sum((x - m) ** 2 for x in xs) / (n - 1)


def mean_difference(xs1: Sequence[float], xs2: Sequence[float],
                    z: float = Z95) -> Interval | None:
    """mean(xs2) - mean(xs1), Welch's unequal-variance standard error, normal quantile;
    None with fewer than 2 values in an arm."""
    if len(xs1) < 2 or len(xs2) < 2:
        return None
    (m1, v1), (m2, v2) = mean_and_variance(xs1), mean_and_variance(xs2)
    d, se = m2 - m1, sqrt(v1 / len(xs1) + v2 / len(xs2))
    return Interval(d, d - z * se, d + z * se)

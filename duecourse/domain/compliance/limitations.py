"""Limitation periods: after them a debt is time-barred - never sued on, never threatened.

US periods are state law; the table holds each state's period for written contracts (the
usual basis of a consumer loan), and a policy overrides any of them per region
(`compliance: {US: {statute_of_limitations_by_region: {US-NY: P6Y}}}`) once counsel has
confirmed what applies to its product. The start event is a pack parameter.
"""

from __future__ import annotations

from datetime import timedelta


def years(n: int) -> timedelta:
    """`n` years as 365-day years: a debt counts as time-barred up to n/4 days early (no
    threat of suit on its last days), never late."""
    return timedelta(days=365 * n)


US_WRITTEN_CONTRACTS: dict[str, timedelta] = {f"US-{state}": years(n) for state, n in {
    "AL": 6, "AK": 3, "AZ": 6, "AR": 5, "CA": 4, "CO": 6, "CT": 6, "DE": 3, "DC": 3,
    "FL": 5, "GA": 6, "HI": 6, "ID": 5, "IL": 10, "IN": 6, "IA": 10, "KS": 5, "KY": 10,
    "LA": 5, "ME": 6, "MD": 3, "MA": 6, "MI": 6, "MN": 6, "MS": 3, "MO": 10, "MT": 8,
    "NE": 5, "NV": 6, "NH": 3, "NJ": 6, "NM": 6, "NY": 3, "NC": 3, "ND": 6, "OH": 6,
    "OK": 5, "OR": 6, "PA": 4, "RI": 10, "SC": 3, "SD": 6, "TN": 6, "TX": 4, "UT": 6,
    "VT": 6, "VA": 5, "WA": 6, "WV": 10, "WI": 6, "WY": 8,
}.items()}
"""Limitation periods by state for written contracts to pay money - where a state has a
shorter period for promissory notes or money contracts, that one (IN 6: Ind. Code
34-11-2-9; LA 5: Civil Code art. 3498; WY 8: contracts from 2019-07-01; NY 3: Consumer
Credit Fairness Act 2022; KY 10: contracts from 2014-07-15). Shorter is the safe side:
a debt counted time-barred early is never threatened with suit; late would be unlawful."""

"""How well a scorer's segments predict cure, on a ledger's cases.

Each case whose cure is known (closed PAID or SETTLED within the horizon, or not: see
`duecourse.lab.training`) is scored again, by the scorer named, on the facts its
hand-over had (rebuilt from the ledger as training does): the first segment decides a
loan's treatment, and every scorer sees the same facts, so the scorecard and the learned
scorer compare like for like. A scorer trained on the same ledger is judged on cases it
learned from: its AUC flatters it (the model file's own AUC is on held-out cases)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.activities.scoring import load_scorer
from duecourse.domain.policy import Segment
from duecourse.lab.figures import Rate, SegmentQuality
from duecourse.lab.training import HORIZON_DAYS, observations


def auc(scores: list[float], cured: list[bool]) -> float | None:
    """The chance a cured case scored above one that was not (ties count half); None
    without both kinds."""
    pos = [s for s, c in zip(scores, cured, strict=True) if c]
    neg = [s for s, c in zip(scores, cured, strict=True) if not c]
    if not pos or not neg:
        return None
    ranked = sorted(scores)
    rank: dict[float, float] = {}
    i = 0
    while i < len(ranked):  # average 1-based rank of each distinct score
        j = i
        while j < len(ranked) and ranked[j] == ranked[i]:
            j += 1
        rank[ranked[i]] = (i + 1 + j) / 2
        i = j
    wins = sum(rank[s] for s in pos) - len(pos) * (len(pos) + 1) / 2
    return wins / (len(pos) * len(neg))


async def segment_quality(engine: AsyncEngine, scorer_name: str,
                          horizon_days: int = HORIZON_DAYS,
                          since: datetime | None = None) -> SegmentQuality:
    """Cure rate (within `horizon_days`) per segment `scorer_name` (module:function)
    assigns at hand-over to the cases opened from `since` on (all, without it), and the
    AUC of its score against cure. Raises ValueError when the scorer cannot be loaded
    (or, for the learned scorer, its model file cannot)."""
    scorer = load_scorer(scorer_name)
    known = await observations(engine, handover_only=True, horizon_days=horizon_days,
                               since=since)
    scored = [(scorer(o.facts), o.cured) for o in known]
    whole = Counter(r.segment for r, _ in scored)
    part = Counter(r.segment for r, c in scored if c)
    rates = {s.value: Rate(part=part[s], whole=whole[s],
                           value=part[s] / whole[s] if whole[s] else None)
             for s in Segment}
    return SegmentQuality(scorer=scorer_name, cure_rate_by_segment=rates,
                          auc=auc([float(r.score) for r, _ in scored],
                                  [c for _, c in scored]))

"""Portfolio figures for ops: open loans per stage, closed per outcome, money per currency.

Sums are done in Python with Decimal: SQLite would add the exact text amounts as floats.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.store import tables as t


class PortfolioFigures(BaseModel):
    open_by_stage: dict[str, int]
    closed_by_outcome: dict[str, int]
    outstanding: dict[str, Decimal]
    recovered: dict[str, Decimal]


async def portfolio_figures(engine: AsyncEngine) -> PortfolioFigures:
    cases, st, pay = t.collection_cases, t.stage_transitions, t.payments
    latest = select(func.max(st.c.id)).where(st.c.to_stage.is_not(None)).group_by(st.c.case_id)
    async with engine.connect() as conn:
        case_rows = (await conn.execute(select(
            cases.c.case_id, cases.c.currency, cases.c.outcome,
            cases.c.outstanding_at_open))).mappings().all()
        stages = dict((await conn.execute(select(st.c.case_id, st.c.to_stage).where(
            st.c.id.in_(latest)))).all())
        payments = (await conn.execute(select(pay.c.case_id, pay.c.currency,
                                              pay.c.applied))).mappings().all()
    applied: dict[str, Decimal] = defaultdict(Decimal)
    recovered: dict[str, Decimal] = defaultdict(Decimal)
    for p in payments:
        applied[p["case_id"]] += p["applied"]
        recovered[p["currency"]] += p["applied"]
    open_by_stage: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    outstanding: dict[str, Decimal] = defaultdict(Decimal)
    for case in case_rows:
        if case["outcome"]:
            closed[case["outcome"]] += 1
            continue
        open_by_stage[stages.get(case["case_id"], "REMINDER")] += 1
        outstanding[case["currency"]] += case["outstanding_at_open"] - applied[case["case_id"]]
    return PortfolioFigures(open_by_stage=dict(open_by_stage), closed_by_outcome=dict(closed),
                     outstanding=dict(outstanding), recovered=dict(recovered))

"""What the ledger knows of a loan's payments, asked before a report goes to Temporal.

A retried report whose first attempt was recorded is answered from here: also once that
payment closed the loan, when the workflow would refuse it as closed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.store import tables as t


async def payment_recorded(engine: AsyncEngine, loan_id: str, reference: str) -> bool:
    """Whether the ledger holds a payment of the loan with this reference (any case)."""
    p = t.payments
    async with engine.connect() as conn:
        found = (await conn.execute(select(p.c.id).where(
            p.c.loan_id == loan_id, p.c.reference == reference).limit(1))).first()
    return found is not None

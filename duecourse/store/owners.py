"""Which platform handed each loan over (`loan_owners`).

The owner is the platform's id (`duecourse.store.platforms`), not a key: every key of the
platform, a rotated one too, sees and acts on its loans and the lender's own (started by
CLI or starter, so owned by nobody), and its webhooks receive only those loans' events.
The first claim wins: handing a loan over again, or by another platform, changes nothing;
handing over the id of a loan already in collection without an owner (the lender's own)
leaves it without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.store import tables as t


class LoanOwners:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim(self, platform: str, loan_ids: Sequence[str]) -> list[str]:
        """Record `platform` as the owner of the loans nobody owns yet; returns the ones
        this call claimed (to `release` them if the loan turns out to exist already)."""
        ids = list(dict.fromkeys(loan_ids))
        if not ids:
            return []
        before = await self.owners_of(ids)
        now = datetime.now(UTC)
        rows = [{"loan_id": loan_id, "platform": platform, "claimed_at": now}
                for loan_id in ids if loan_id not in before]
        if rows:
            dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(t.loan_owners).values(rows).on_conflict_do_nothing(
                index_elements=["loan_id"])
            async with self.engine.begin() as conn:
                await conn.execute(stmt)
        after = await self.owners_of(ids)
        return [i for i in ids if i not in before and after.get(i) == platform]

    async def release(self, platform: str, loan_ids: Sequence[str]) -> None:
        """Undo `platform`'s claims on these loans."""
        if not loan_ids:
            return
        table = t.loan_owners
        async with self.engine.begin() as conn:
            await conn.execute(delete(table).where(table.c.platform == platform,
                                                   table.c.loan_id.in_(list(loan_ids))))

    async def owner_of(self, loan_id: str) -> str | None:
        return (await self.owners_of([loan_id])).get(loan_id)

    async def owners_of(self, loan_ids: Sequence[str]) -> dict[str, str]:
        """The owners of those of `loan_ids` that have one."""
        table = t.loan_owners
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(table.c.loan_id, table.c.platform).where(
                table.c.loan_id.in_(list(dict.fromkeys(loan_ids)))))
            return {loan_id: platform for loan_id, platform in rows}

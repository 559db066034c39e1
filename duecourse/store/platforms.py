"""Platforms (tenants): who owns loans and webhooks, above the keys that act for them.

A platform's id is the owner recorded in `loan_owners.platform` and `webhooks.owner`, the
actor id of whatever its keys do (ledger rows say `platform:<id>`), the Platform search
attribute of its loans and the Temporal fairness key of their workflows. Its keys come and
go (`duecourse keys rotate`, `keys revoke`) and it keeps all of these. Before platforms
existed a platform key's name was the owner; migration 0011 made each such key a platform
of the same id, so older rows and histories read the same. A disabled platform's keys are
refused (403) until it is enabled again; its loans keep running.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.domain.ids import AGENT_ID_PATTERN
from duecourse.store import tables as t

PLATFORM_ID = re.compile(AGENT_ID_PATTERN)
"""A platform's id takes a key name's shape: the keys it replaced were named so."""
MAX_NAME = 200  # the column's width


class Platform(BaseModel):
    platform_id: str
    name: str
    created_at: datetime
    disabled_at: datetime | None = None


def check_id(platform_id: str) -> str:
    if not PLATFORM_ID.fullmatch(platform_id):
        raise ValueError(f"a platform id is 1-64 letters, digits and . _ @ - (it is the "
                         f"owner of its loans and the actor in the ledger), got "
                         f"{platform_id!r}")
    return platform_id


async def platform_in(conn: AsyncConnection, platform_id: str) -> Platform | None:
    """The platform, read inside `conn` (so a key can be created in the same transaction)."""
    row = (await conn.execute(select(t.platforms).where(
        t.platforms.c.platform_id == platform_id))).mappings().first()
    return None if row is None else Platform.model_validate(dict(row))


async def add_platform(conn: AsyncConnection, platform_id: str,
                       name: str | None = None) -> Platform:
    """Insert a platform inside `conn`; ValueError for a bad id or name."""
    display = (name if name is not None else platform_id).strip()
    if not display or len(display) > MAX_NAME:
        raise ValueError(f"a platform's name is 1 to {MAX_NAME} characters")
    row = {"platform_id": check_id(platform_id), "name": display,
           "created_at": datetime.now(UTC), "disabled_at": None}
    await conn.execute(t.platforms.insert().values(row))
    return Platform.model_validate(row)


class PlatformStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, platform_id: str, name: str | None = None) -> Platform:
        """A new platform (display name defaults to its id); ValueError if taken."""
        try:
            async with self.engine.begin() as conn:
                return await add_platform(conn, platform_id, name)
        except IntegrityError:
            raise ValueError(f"a platform {platform_id!r} already exists") from None

    async def get(self, platform_id: str) -> Platform | None:
        async with self.engine.connect() as conn:
            return await platform_in(conn, platform_id)

    async def list(self) -> list[Platform]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.platforms).order_by(
                t.platforms.c.created_at, t.platforms.c.platform_id))).mappings().all()
        return [Platform.model_validate(dict(r)) for r in rows]

    async def disable(self, platform_id: str) -> bool:
        """Refuse the platform's keys from now on; False if unknown or already disabled."""
        return await self._set_disabled(platform_id, datetime.now(UTC))

    async def enable(self, platform_id: str) -> bool:
        """Admit the platform's live keys again; False if unknown or not disabled."""
        return await self._set_disabled(platform_id, None)

    async def _set_disabled(self, platform_id: str, when: datetime | None) -> bool:
        table = t.platforms
        current = table.c.disabled_at.is_(None) if when else table.c.disabled_at.is_not(None)
        async with self.engine.begin() as conn:
            result = await conn.execute(update(table).where(
                table.c.platform_id == platform_id, current).values(disabled_at=when))
        return bool(result.rowcount)

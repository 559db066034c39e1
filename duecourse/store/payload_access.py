"""The audit of the codec server (`payload_access`): who asked to read or seal payloads.

A row is written before a decoded payload leaves the server, so a decode the ledger could
not record is never answered. Rows hold who, where from and how many, never content.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.store import tables as t
from duecourse.store.keys import secret_hash

Operation = Literal["decode", "encode"]


class PayloadAccess(BaseModel):
    operation: Operation
    allowed: bool = False
    """Whether the key (and origin) were authorised; a refusal decodes nothing."""
    status: int = 0
    """The HTTP status answered."""
    reason: str | None = None
    """Why it was refused or failed; None when it was answered."""
    key_id: str | None = None
    key_name: str | None = None
    role: str | None = None
    namespace: str | None = None
    origin: str | None = None
    payload_count: int = 0
    payload_key_ids: list[str] = Field(default_factory=list)
    """The payload keys that sealed the payloads (decode) or seal them (encode)."""
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class KeyOnRecord(BaseModel):
    """An API key as the audit names it, whether or not it is still live."""

    key_id: str
    name: str
    role: str


class PayloadAccessLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(self, entry: PayloadAccess) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(t.payload_access.insert().values(entry.model_dump()))

    async def recent(self, limit: int = 50, *, refused_only: bool = False,
                     since: datetime | None = None) -> list[PayloadAccess]:
        """The newest rows first."""
        table = t.payload_access
        query = select(table).order_by(table.c.occurred_at.desc(), table.c.id.desc())
        if refused_only:
            query = query.where(table.c.allowed.is_(False))
        if since is not None:
            query = query.where(table.c.occurred_at >= since)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit))).mappings().all()
        return [PayloadAccess.model_validate(dict(r)) for r in rows]

    async def key_named_by(self, token: str) -> KeyOnRecord | None:
        """The revoked key a refused token really is (its secret matches), so the audit
        names who tried; None for a forged token, even one quoting a real key id (key ids
        are not secret: an audit must not blame a key for a guess)."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != "dc" or not key_id or not secret:
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(
                t.api_keys.c.key_id, t.api_keys.c.name, t.api_keys.c.role,
                t.api_keys.c.secret_hash).where(
                t.api_keys.c.key_id == key_id))).mappings().first()
        if row is None or not hmac.compare_digest(row["secret_hash"], secret_hash(secret)):
            return None
        return KeyOnRecord.model_validate({k: row[k] for k in ("key_id", "name", "role")})

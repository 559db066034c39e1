"""API keys: `dc_<key id>_<secret>`; only a SHA-256 of the secret is stored.

The secret is 32 random bytes, so a plain hash is enough (no password stretching needed),
and lookups go by key id, with a constant-time comparison of the hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.actor import Role
from duecourse.domain.ids import AGENT_ID_PATTERN
from duecourse.store import tables as t


class ApiKey(BaseModel):
    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


KEY_NAME = re.compile(AGENT_ID_PATTERN)


class KeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, name: str, role: Role | str) -> tuple[ApiKey, str]:
        """A new key; returns it with the full token, which is never shown again."""
        try:
            role = Role(role)
        except ValueError:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(Role)}") from None
        if not KEY_NAME.fullmatch(name):
            raise ValueError(f"a key name is 1-64 letters, digits and . _ @ - (it is the "
                             f"actor in the ledger and the owner of loans), got {name!r}")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        row: dict[str, Any] = {"key_id": key_id, "name": name, "role": role.value,
                               "secret_hash": _hash(secret), "created_at": datetime.now(UTC)}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(t.api_keys.insert().values(row))
        except IntegrityError:
            raise ValueError(f"a key named {name!r} already exists") from None
        return ApiKey(**{k: v for k, v in row.items() if k != "secret_hash"}), \
            f"dc_{key_id}_{secret}"

    async def verify(self, token: str) -> ApiKey | None:
        """The live key a token belongs to, or None."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != "dc" or not key_id or not secret:
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.api_keys).where(
                t.api_keys.c.key_id == key_id))).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["secret_hash"], _hash(secret)):
            return None
        return ApiKey.model_validate(dict(row))

    async def list(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.api_keys).order_by(
                t.api_keys.c.created_at))).mappings().all()
        return [ApiKey.model_validate(dict(r)) for r in rows]

    async def revoke(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(update(t.api_keys).where(
                t.api_keys.c.name == name, t.api_keys.c.revoked_at.is_(None)).values(
                revoked_at=datetime.now(UTC)))
        return bool(result.rowcount)

"""API keys: `dc_<key id>_<secret>`; only a SHA-256 of the secret is stored.

The secret is 32 random bytes, so a plain hash is enough (no password stretching needed),
and lookups go by key id, with a constant-time comparison of the hashes.

A platform key belongs to a platform (`duecourse.store.platforms`), which owns the loans
and webhooks whichever of its keys acted: rotating a key (`rotate`, then `revoke` the old
one) loses nothing. A person's key (agent, supervisor, ops) belongs to none; its name is
the actor it acts as.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.domain.actor import Role
from duecourse.domain.ids import AGENT_ID_PATTERN
from duecourse.store import tables as t
from duecourse.store.platforms import add_platform, platform_in


class ApiKey(BaseModel):
    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    platform_id: str | None = None
    platform_disabled_at: datetime | None = None


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


KEY_NAME = re.compile(AGENT_ID_PATTERN)


def _keys() -> Select[Any]:
    """Keys with their platform's disabled_at, for `ApiKey`."""
    return select(*t.api_keys.c, t.platforms.c.disabled_at.label("platform_disabled_at")
                  ).select_from(t.api_keys.outerjoin(t.platforms))


def _rotated_name(platform_id: str) -> str:
    """A rotated key's default name: its platform's id and a random suffix (64 at most)."""
    suffix = secrets.token_hex(4)
    return f"{platform_id[:64 - 1 - len(suffix)]}.{suffix}"


class KeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, name: str, role: Role | str,
                     platform: str | None = None) -> tuple[ApiKey, str]:
        """A new key; returns it with the full token, which is never shown again.

        A platform key belongs to `platform`, which must exist; without one, to a new
        platform named like the key (as keys were before platforms) - never to an existing
        one, whose loans and webhooks the key would silently gain."""
        try:
            role = Role(role)
        except ValueError:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(Role)}") from None
        if not KEY_NAME.fullmatch(name):
            raise ValueError(f"a key name is 1-64 letters, digits and . _ @ - (a person's "
                             f"key acts as that name in the ledger), got {name!r}")
        if platform is not None and role is not Role.PLATFORM:
            raise ValueError(f"only a platform key belongs to a platform; {role} keys act "
                             "for the lender (leave out --platform)")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        row: dict[str, Any] = {"key_id": key_id, "name": name, "role": role.value,
                               "secret_hash": secret_hash(secret), "created_at": datetime.now(UTC),
                               "platform_id": None}
        try:
            async with self.engine.begin() as conn:
                if role is Role.PLATFORM:
                    row["platform_id"] = await self._platform_for(conn, name, platform)
                await conn.execute(t.api_keys.insert().values(row))
        except IntegrityError:
            raise ValueError(f"a key named {name!r} already exists") from None
        return ApiKey(**{k: v for k, v in row.items() if k != "secret_hash"}), \
            f"dc_{key_id}_{secret}"

    @staticmethod
    async def _platform_for(conn: AsyncConnection, name: str, platform: str | None) -> str:
        if platform is None:
            if await platform_in(conn, name) is not None:  # never join one by a name's luck
                raise ValueError(f"a platform {name!r} already exists: to give it another key "
                                 f"pass --platform {name} (or rotate one of its keys)")
            await add_platform(conn, name)
            return name
        if await platform_in(conn, platform) is None:
            raise ValueError(f"no platform {platform!r}; create it first with "
                             f"`duecourse platforms create {platform}`")
        return platform

    async def rotate(self, key_id: str, name: str | None = None) -> tuple[ApiKey, str]:
        """A new key for the platform of live platform key `key_id` (named `name`, or after
        the platform with a random suffix); the old key stays live until revoked, so
        clients can move over first."""
        old = await self.get(key_id)
        if old is None or old.revoked_at is not None:
            raise ValueError(f"no live key with id {key_id!r} (see `duecourse keys list`)")
        if old.role is not Role.PLATFORM or old.platform_id is None:
            raise ValueError(f"key {key_id} is a {old.role} key, whose name is the actor it "
                             "acts as: revoke it and create one for the new holder instead")
        for _ in range(3):  # a default name is unique unless someone took it meanwhile
            new_name = name or _rotated_name(old.platform_id)
            try:
                return await self.create(new_name, Role.PLATFORM, old.platform_id)
            except ValueError:
                if name is not None:
                    raise
        raise ValueError("could not find a free key name; give one with --name")

    async def verify(self, token: str) -> ApiKey | None:
        """The live key a token belongs to, or None."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != "dc" or not key_id or not secret:
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(_keys().where(
                t.api_keys.c.key_id == key_id))).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["secret_hash"], secret_hash(secret)):
            return None
        return ApiKey.model_validate(dict(row))

    async def get(self, key_id: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_keys().where(
                t.api_keys.c.key_id == key_id))).mappings().first()
        return None if row is None else ApiKey.model_validate(dict(row))

    async def list(self, platform: str | None = None) -> list[ApiKey]:
        """Keys, oldest first; only `platform`'s with one."""
        query = _keys().order_by(t.api_keys.c.created_at)
        if platform is not None:
            query = query.where(t.api_keys.c.platform_id == platform)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [ApiKey.model_validate(dict(r)) for r in rows]

    async def revoke(self, key: str) -> bool:
        """Revoke the live key with this key id, or else this name, at once."""
        table = t.api_keys
        async with self.engine.begin() as conn:
            for match in (table.c.key_id == key, table.c.name == key):
                result = await conn.execute(update(table).where(
                    match, table.c.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC)))
                if result.rowcount:
                    return True
        return False

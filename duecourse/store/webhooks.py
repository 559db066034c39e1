"""Platforms' webhooks and the record of every delivery to them.

A webhook's `owner` is its platform's id (`duecourse.store.platforms`), so it outlives the
key that registered it: any key of the platform lists and disables it.

A delivery row is keyed by (event_id, webhook_id): however often the outbox dispatcher
retries a delivery, each webhook has one row per event, counting its attempts, and a
webhook marked `delivered` (or `failed` for good) is never posted that event again.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.domain.events import ALL_EVENTS, EVENT_TYPES, OutboundEvent, subscribed
from duecourse.netguard import literal_problem
from duecourse.store import tables as t

DeliveryStatus = Literal["pending", "delivered", "failed"]
"""`pending`: attempted, will be retried; `delivered`: a 2xx answer; `failed`: refused
permanently (a 4xx other than 408/429) or out of retries."""

FINAL: tuple[DeliveryStatus, ...] = ("delivered", "failed")
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 128  # the column's width


class Webhook(BaseModel):
    webhook_id: str
    owner: str  # the platform's id
    url: str
    events: list[str]
    created_at: datetime
    disabled_at: datetime | None = None
    secret: str = Field(default="", exclude=True, repr=False,
                        description="never serialised: shown once, by register()")


class Delivery(BaseModel):
    event_id: str
    webhook_id: str
    event_type: str
    loan_id: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    updated_at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_url(url: str, allow_private: bool) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook url must be an absolute http(s) URL, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError(f"webhook url has an invalid port: {url!r}") from None
    if not allow_private and (problem := literal_problem(url.strip())):
        raise ValueError(f"webhook url must reach a public address: {problem} (set "
                         "DUECOURSE_WEBHOOK_ALLOW_PRIVATE=true for local development)")
    return url.strip()


def _check_events(events: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(e.strip() for e in events))
    if not chosen:
        raise ValueError(f"subscribe to at least one event type, or {ALL_EVENTS!r}")
    unknown = [e for e in chosen if e != ALL_EVENTS and e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type(s) {', '.join(unknown)}; known: "
                         f"{', '.join(EVENT_TYPES)} or {ALL_EVENTS!r}")
    return [ALL_EVENTS] if ALL_EVENTS in chosen else chosen


def _check_secret(secret: str) -> str:
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ValueError(f"a webhook secret must be {MIN_SECRET_LENGTH} to "
                         f"{MAX_SECRET_LENGTH} characters (a short one is guessable)")
    return secret


async def webhooks_in(conn: AsyncConnection, owner: str | None = None,
                      include_disabled: bool = True) -> list[Webhook]:
    """Webhooks, oldest first, read inside `conn` (so a ledger transaction can see them)."""
    query = select(t.webhooks).order_by(t.webhooks.c.created_at, t.webhooks.c.webhook_id)
    if owner is not None:
        query = query.where(t.webhooks.c.owner == owner)
    if not include_disabled:
        query = query.where(t.webhooks.c.disabled_at.is_(None))
    rows = (await conn.execute(query)).mappings().all()
    return [Webhook.model_validate(dict(r)) for r in rows]


def wanting(hooks: Sequence[Webhook], event_type: str,
            loan_owner: str | None) -> list[Webhook]:
    """Those of `hooks` an event of `event_type` on a loan of `loan_owner` goes to."""
    return [w for w in hooks if subscribed(w.events, event_type)
            and (loan_owner is None or w.owner == loan_owner)]


class WebhookStore:
    """Webhooks and their deliveries. `allow_private` lets URLs reach private and
    loopback addresses (local development; see duecourse.netguard)."""

    def __init__(self, engine: AsyncEngine, allow_private: bool = False) -> None:
        self.engine = engine
        self.allow_private = allow_private

    # ------------------------------------------------------------ webhooks
    async def register(self, owner: str, url: str, events: Sequence[str],
                       secret: str | None = None) -> tuple[Webhook, str]:
        """A new webhook and its signing secret (generated unless given); the caller shows
        the secret once. Raises ValueError for a bad URL, event type or secret."""
        row: dict[str, Any] = {
            "webhook_id": f"wh_{secrets.token_hex(8)}", "owner": owner,
            "url": _check_url(url, self.allow_private),
            "secret": _check_secret(secret) if secret is not None
            else secrets.token_urlsafe(32),
            "events": _check_events(events), "created_at": _utcnow(), "disabled_at": None}
        async with self.engine.begin() as conn:
            await conn.execute(t.webhooks.insert().values(row))
        return Webhook.model_validate(row), row["secret"]

    async def get(self, webhook_id: str) -> Webhook | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.webhooks).where(
                t.webhooks.c.webhook_id == webhook_id))).mappings().first()
        return None if row is None else Webhook.model_validate(dict(row))

    async def list(self, owner: str | None = None,
                   include_disabled: bool = True) -> list[Webhook]:
        async with self.engine.connect() as conn:
            return await webhooks_in(conn, owner, include_disabled)

    async def disable(self, webhook_id: str, owner: str | None = None) -> bool:
        """Stop deliveries to a webhook; False when it is unknown, already disabled or (with
        `owner`) someone else's - callers must not learn which."""
        query = update(t.webhooks).where(t.webhooks.c.webhook_id == webhook_id,
                                         t.webhooks.c.disabled_at.is_(None))
        if owner is not None:
            query = query.where(t.webhooks.c.owner == owner)
        async with self.engine.begin() as conn:
            result = await conn.execute(query.values(disabled_at=_utcnow()))
        return bool(result.rowcount)

    async def active_for(self, event_type: str,
                         loan_owner: str | None = None) -> builtins.list[Webhook]:
        """Enabled webhooks subscribed to `event_type` - of `loan_owner` only when the loan
        has one (a platform's loans are no other platform's business; the lender's own
        loans go to every webhook). Few per deployment: filtered here rather than with
        dialect-specific JSON queries."""
        return wanting(await self.list(include_disabled=False), event_type, loan_owner)

    # ------------------------------------------------------------ deliveries
    async def already_delivered(self, event_id: str, webhook_id: str) -> bool:
        return await self.delivery_status(event_id, webhook_id) == "delivered"

    async def delivery_status(self, event_id: str, webhook_id: str) -> DeliveryStatus | None:
        """The status of this event's delivery to this webhook; None before any attempt."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(t.webhook_deliveries.c.status).where(
                t.webhook_deliveries.c.event_id == event_id,
                t.webhook_deliveries.c.webhook_id == webhook_id))).scalar()

    async def record_attempt(self, event: OutboundEvent, webhook_id: str,
                             status: DeliveryStatus, status_code: int | None = None,
                             error: str | None = None) -> None:
        """Count one attempt: insert the row or bump it. A row already `delivered` is left
        as it is, so a late duplicate attempt can never undo a success."""
        now = _utcnow()
        row: dict[str, Any] = {
            "event_id": event.event_id, "webhook_id": webhook_id, "event_type": event.type,
            "loan_id": event.loan_id, "status": status, "attempts": 1,
            "last_status_code": status_code, "last_error": error,
            "delivered_at": now if status == "delivered" else None, "updated_at": now}
        table = t.webhook_deliveries
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_id", "webhook_id"],
            set_={"status": stmt.excluded.status, "attempts": table.c.attempts + 1,
                  "last_status_code": stmt.excluded.last_status_code,
                  "last_error": stmt.excluded.last_error,
                  "delivered_at": stmt.excluded.delivered_at,
                  "updated_at": stmt.excluded.updated_at},
            where=table.c.status != "delivered")
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def deliveries(self, loan_id: str | None = None,
                         event_id: str | None = None) -> builtins.list[Delivery]:
        """Delivery rows of a loan or of one event, oldest first."""
        if loan_id is None and event_id is None:
            raise ValueError("give a loan_id or an event_id")
        table = t.webhook_deliveries
        query = select(table).order_by(table.c.id)
        if loan_id is not None:
            query = query.where(table.c.loan_id == loan_id)
        if event_id is not None:
            query = query.where(table.c.event_id == event_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Delivery.model_validate(dict(r)) for r in rows]

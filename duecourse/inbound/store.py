"""The inbound tables: replies, delivery receipts, unreachable addresses and consent.

Each post is recorded under a unique key before anything acts on it, so a provider that
delivers the same reply or receipt twice finds its first row and nothing happens twice.
Borrower numbers are plain in the ledger (sealed only in Temporal), which is how a reply
is matched to its loan: the latest SMS we sent to that number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.actor import Actor
from duecourse.store import tables as t


def _now() -> datetime:
    return datetime.now(UTC)


def _receipt_key(provider_message_id: str, status: str, error: str | None) -> str:
    return f"{provider_message_id}:{status}:{error or ''}"[:260]


@dataclass(frozen=True)
class Sender:
    """The borrower an SMS number belongs to, and their latest case (`open`: still
    collecting)."""

    loan_id: str
    case_id: str
    borrower_id: str
    language: str
    open: bool


@dataclass(frozen=True)
class Attempt:
    """The contact attempt a provider's message id names."""

    attempt_id: int
    loan_id: str
    case_id: str
    channel: str
    recipient: str


class InboundStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def _insert_ignore(self, table: Table, row: dict[str, Any]) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table).values(row).on_conflict_do_nothing()

    # -------------------------------------------------------------- who is it
    async def find_sender(self, number: str) -> Sender | None:
        """The loan we last texted `number` about, an open case first; None: unknown."""
        a, c, loans = t.contact_attempts, t.collection_cases, t.loans
        query = (select(a.c.loan_id, a.c.case_id, loans.c.borrower_id, loans.c.borrower,
                        c.c.outcome)
                 .join(c, c.c.case_id == a.c.case_id).join(loans, loans.c.loan_id == a.c.loan_id)
                 .where(a.c.channel == "sms", a.c.recipient == number)
                 .order_by(case((c.c.outcome.is_(None), 0), else_=1),
                           a.c.attempted_at.desc()).limit(1))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        language = str((row.borrower or {}).get("language") or "en")
        return Sender(row.loan_id, row.case_id, row.borrower_id, language, row.outcome is None)

    async def open_loans(self, borrower_id: str) -> list[str]:
        """The borrower's loans still collecting."""
        c, loans = t.collection_cases, t.loans
        async with self.engine.connect() as conn:
            return list((await conn.execute(
                select(c.c.loan_id).distinct().join(loans, loans.c.loan_id == c.c.loan_id)
                .where(loans.c.borrower_id == borrower_id, c.c.outcome.is_(None))
                .order_by(c.c.loan_id))).scalars())

    async def attempt(self, provider_message_id: str) -> Attempt | None:
        """The attempt the provider sent as `provider_message_id` (an email's Message-ID
        matches with or without its angle brackets)."""
        bare = provider_message_id.strip().strip("<>")
        a = t.contact_attempts
        query = select(a.c.id, a.c.loan_id, a.c.case_id, a.c.channel, a.c.recipient).where(
            a.c.provider_message_id.in_([bare, f"<{bare}>"])).order_by(a.c.id.desc()).limit(1)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Attempt(*row)

    # -------------------------------------------------------------- replies
    async def record_reply(self, row: dict[str, Any]) -> tuple[int, bool]:
        """The reply's row id, and whether it was already acted on (a repeated post)."""
        r = t.inbound_replies
        async with self.engine.begin() as conn:
            await conn.execute(self._insert_ignore(r, {**row, "recorded_at": _now()}))
            found = (await conn.execute(select(r.c.id, r.c.applied_at).where(
                r.c.dedup_key == row["dedup_key"]))).one()
        return found.id, found.applied_at is not None

    async def claim_reply(self, reply_id: int, lease: timedelta = timedelta(minutes=1)) -> bool:
        """Only one request acts on a reply at a time; False: another is, or did."""
        r, now = t.inbound_replies, _now()
        async with self.engine.begin() as conn:
            done = await conn.execute(update(r).where(
                r.c.id == reply_id, r.c.applied_at.is_(None),
                or_(r.c.claimed_until.is_(None), r.c.claimed_until < now)).values(
                claimed_until=now + lease))
        return bool(done.rowcount)

    async def release_reply(self, reply_id: int) -> None:
        """Acting failed: the provider's retry may act on it again."""
        r = t.inbound_replies
        async with self.engine.begin() as conn:
            await conn.execute(update(r).where(r.c.id == reply_id).values(claimed_until=None))

    async def finish_reply(self, reply_id: int, loan_id: str | None, outcome: str,
                           answer_id: str | None = None, answer_error: str | None = None) -> None:
        r = t.inbound_replies
        async with self.engine.begin() as conn:
            await conn.execute(update(r).where(r.c.id == reply_id).values(
                loan_id=loan_id, outcome=outcome, answer_id=answer_id,
                answer_error=answer_error, applied_at=_now(), claimed_until=None))

    async def replies(self, unknown_only: bool = False) -> list[dict[str, Any]]:
        """Replies, newest first; `unknown_only`: those from numbers we do not know."""
        r = t.inbound_replies
        query = select(r).order_by(r.c.id.desc())
        if unknown_only:
            query = query.where(r.c.outcome == "unknown_sender")
        async with self.engine.connect() as conn:
            return [dict(m) for m in (await conn.execute(query)).mappings()]

    # -------------------------------------------------------------- receipts
    async def record_receipt(self, provider_message_id: str, status: str, error: str | None,
                             attempt: Attempt | None) -> bool:
        """True the first time this message reports this status (and detail): only that
        request acts on it, so two identical posts at once act once."""
        key = _receipt_key(provider_message_id, status, error)
        async with self.engine.begin() as conn:
            done = await conn.execute(self._insert_ignore(t.delivery_receipts, {
                "dedup_key": key, "provider_message_id": provider_message_id[:200],
                "status": status, "error": error,
                "attempt_id": attempt.attempt_id if attempt else None,
                "loan_id": attempt.loan_id if attempt else None, "received_at": _now()}))
        return bool(done.rowcount)

    async def forget_receipt(self, provider_message_id: str, status: str,
                             error: str | None) -> None:
        """Acting on the receipt failed: the provider's retry records and acts again."""
        d = t.delivery_receipts
        async with self.engine.begin() as conn:
            await conn.execute(delete(d).where(
                d.c.dedup_key == _receipt_key(provider_message_id, status, error)))

    async def delivery_status(self, attempt_id: int) -> str | None:
        """The latest status a provider reported for the attempt."""
        d = t.delivery_receipts
        async with self.engine.connect() as conn:
            return (await conn.execute(select(d.c.status).where(d.c.attempt_id == attempt_id)
                                       .order_by(d.c.id.desc()).limit(1))).scalar()

    async def mark_unreachable(self, channel: str, address: str, reason: str,
                               loan_id: str | None) -> bool:
        """True when the address is newly marked."""
        async with self.engine.begin() as conn:
            done = await conn.execute(self._insert_ignore(t.unreachable_addresses, {
                "channel": channel, "address": address, "reason": reason,
                "loan_id": loan_id, "marked_at": _now()}))
        return bool(done.rowcount)

    async def unmark(self, channel: str, address: str) -> None:
        """Take back a mark whose report to the loan failed (the retry marks again)."""
        u = t.unreachable_addresses
        async with self.engine.begin() as conn:
            await conn.execute(delete(u).where(u.c.channel == channel, u.c.address == address))

    async def is_unreachable(self, channel: str, address: str) -> bool:
        """Whether a provider called this address invalid: the send path asks it."""
        u = t.unreachable_addresses
        async with self.engine.connect() as conn:
            return (await conn.execute(select(u.c.id).where(
                u.c.channel == channel, u.c.address == address))).first() is not None

    # -------------------------------------------------------------- consent
    async def consent(self, borrower_id: str, channel: str) -> str | None:
        """The standing: "given", "withdrawn", or None when nothing was recorded."""
        k = t.consents
        async with self.engine.connect() as conn:
            return (await conn.execute(select(k.c.action).where(
                k.c.borrower_id == borrower_id, k.c.channel == channel)
                .order_by(k.c.id.desc()).limit(1))).scalar()

    async def standing(self, borrower_id: str) -> dict[str, str]:
        """Per channel, the latest action ("given" or "withdrawn"): what a loan handed over
        for this borrower starts from."""
        k = t.consents
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(k.c.channel, k.c.action).where(
                k.c.borrower_id == borrower_id).order_by(k.c.id))).all()
        return {row.channel: row.action for row in rows}  # later rows overwrite

    async def withdrawn_for(self, loan_id: str, channel: str) -> bool:
        """Whether the loan's borrower stands withdrawn from `channel` in the consent
        ledger: the send path's last check, whatever the loan's own state says."""
        k, loans = t.consents, t.loans
        async with self.engine.connect() as conn:
            action = (await conn.execute(
                select(k.c.action).join(loans, loans.c.borrower_id == k.c.borrower_id)
                .where(loans.c.loan_id == loan_id, k.c.channel == channel)
                .order_by(k.c.id.desc()).limit(1))).scalar()
        return action == "withdrawn"

    async def latest_consent(self, borrower_id: str, channel: str) -> dict[str, Any] | None:
        """The row that is the standing (its id, action, source and actor), or None."""
        k = t.consents
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(k).where(
                k.c.borrower_id == borrower_id, k.c.channel == channel)
                .order_by(k.c.id.desc()).limit(1))).mappings().first()
        return None if row is None else dict(row)

    async def record_consent(self, borrower_id: str, loan_id: str | None, channel: str,
                             action: str, source: str, actor: Actor, note: str = "",
                             occurred_at: datetime | None = None,
                             dedup_key: str | None = None) -> int | None:
        """The new row's id; None when `dedup_key` was recorded before."""
        now = _now()
        async with self.engine.begin() as conn:
            done = await conn.execute(self._insert_ignore(t.consents, {
                "dedup_key": dedup_key, "borrower_id": borrower_id, "loan_id": loan_id,
                "channel": channel, "action": action, "source": source,
                "actor_kind": actor.kind.value, "actor_id": actor.id, "note": note,
                "occurred_at": occurred_at or now, "recorded_at": now}))
            if not done.rowcount:
                return None
            return int(done.inserted_primary_key[0])

    async def consents(self, borrower_id: str) -> list[dict[str, Any]]:
        """The borrower's consent history, oldest first."""
        k = t.consents
        async with self.engine.connect() as conn:
            return [dict(m) for m in (await conn.execute(select(k).where(
                k.c.borrower_id == borrower_id).order_by(k.c.id))).mappings()]

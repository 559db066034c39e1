"""The ledger side of a fenced send: claim, count, record - one row per planned message.

`send_message` claims the message's `contact_attempts` row (recording the compliance
decision that allowed it in the same transaction) before it calls the channel, holds a
lease on it so no two attempts can overlap, counts each call to the channel on the row
(so ledger errors never use up the channel's attempts), and records how it ended. A row
that never reached the channel (cancelled by a stop fact, or expired with its lawful
window) may be claimed again by a later decision, and so may a failed one by a new
decision (a person fixed what made it fail); a sent row is final. A row released after
the channel was called at least once is `in_doubt` (the channel may have taken it): the
audit lists such rows, and a new decision claims it again under the same key, which the
channel recognises. An attempt that ended without an answer after calling the channel (a
worker that died, a provider whose reply never came) is settled by asking the channel
whether it took the message (`take_over`, then `record_sent` or `release`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from duecourse.channels.sms_segments import segments
from duecourse.domain.actor import SYSTEM
from duecourse.store import tables as t
from duecourse.store.ledger import Ledger
from duecourse.temporal.contracts import SendMessage

DONE = ("sent", "made_by_person")
REOPENABLE = ("cancelled", "expired", "in_doubt")


class SendInFlight(RuntimeError):
    """Another attempt holds this message's lease: it may be sending right now."""


class LeaseLost(RuntimeError):
    """This attempt's lease was taken over (it ran too long): it must not send."""


@dataclass(frozen=True)
class Claim:
    status: str  # "claimed" for this attempt, else the final status found
    lease_until: datetime | None
    provider_message_id: str | None
    channel_attempts: int
    fenced_at: datetime | None
    sent_at: datetime | None
    error: str | None

    @property
    def ours(self) -> bool:
        return self.status == "claimed"


class SendLedger:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._engine = ledger.engine

    async def _row(self, conn: AsyncConnection, key: str) -> Any:
        query = select(t.contact_attempts).where(t.contact_attempts.c.idempotency_key == key)
        if self._engine.dialect.name == "postgresql":
            query = query.with_for_update()
        return (await conn.execute(query)).mappings().one()

    async def claim(self, req: SendMessage, subject: str | None, body: str, language: str,
                    owner: str, now: datetime, lease: timedelta) -> Claim:
        """Record the decision and take the message's row for `owner` until `now + lease`;
        or report the final status another attempt already reached."""
        table = t.contact_attempts
        sms = segments(body) if req.channel.value == "sms" else None  # shown in the ledger
        counted = {"segments": sms.segments if sms else None,
                   "encoding": sms.encoding if sms else None}
        async with self._engine.begin() as conn:
            await self._ledger.write_entry(conn, req.case_id, req.loan_id, req.decision)
            await conn.execute(self._ledger._insert_ignore(table, [{
                "idempotency_key": req.idempotency_key, "case_id": req.case_id,
                "loan_id": req.loan_id, "stage": req.stage, "step": req.step,
                "channel": req.channel.value, "template": req.template, "language": language,
                "recipient": req.recipient, "recipient_kind": req.recipient_kind,
                "purpose": req.purpose, "subject": subject, "body": body,
                "status": "claimed", "provider_message_id": None,
                "scheduled_for": req.scheduled_for, "attempted_at": now,
                "decision_key": f"{req.case_id}:{req.decision.key}",
                "not_after": req.not_after, "lease_owner": None, "lease_until": None,
                "channel_attempts": 0, **counted}]))
            row = await self._row(conn, req.idempotency_key)
            decision_key = f"{req.case_id}:{req.decision.key}"
            same_decision = row["decision_key"] == decision_key
            if row["status"] in DONE or (row["status"] == "failed" and same_decision):
                return _claim(row)
            held = row["lease_owner"] not in (None, owner) and row["lease_until"] is not None \
                and row["lease_until"] > now
            if row["status"] == "claimed" and held:
                raise SendInFlight(f"attempt {row['lease_owner']} holds the send until "
                                   f"{row['lease_until'].isoformat()}")
            values: dict[str, Any] = {  # a new decision may pick another channel
                "status": "claimed", "lease_owner": owner, "lease_until": now + lease,
                "attempted_at": now, "subject": subject, "body": body, "language": language,
                "template": req.template, "scheduled_for": req.scheduled_for,
                "not_after": req.not_after, "error": None, "decision_key": decision_key,
                "stage": req.stage, "channel": req.channel.value, "recipient": req.recipient,
                "recipient_kind": req.recipient_kind, "purpose": req.purpose, **counted}
            if not same_decision:  # a new decision: a fresh budget
                values["channel_attempts"] = 0
            await conn.execute(update(table).where(
                table.c.idempotency_key == req.idempotency_key).values(**values))
            return Claim(status="claimed", lease_until=now + lease, provider_message_id=None,
                         channel_attempts=int(values.get("channel_attempts",
                                                         row["channel_attempts"])),
                         fenced_at=None, sent_at=None, error=None)

    async def count_attempt(self, key: str, owner: str) -> int:
        """One more call to the channel under `owner`'s lease; returns how many so far."""
        table = t.contact_attempts
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(table).where(table.c.idempotency_key == key,
                                    table.c.lease_owner == owner,
                                    table.c.status == "claimed")
                .values(channel_attempts=table.c.channel_attempts + 1))
            if not result.rowcount:
                raise LeaseLost(f"the send {key} is no longer held by this attempt")
            return int((await self._row(conn, key))["channel_attempts"])

    async def take_over(self, key: str, owner: str, now: datetime,
                        lease: timedelta) -> Claim | None:
        """Hold a withdrawn send's row for `owner` to settle it: a row left claimed by an
        attempt whose lease ran out, or one in doubt. None when no attempt ever claimed it;
        a final or released row is reported as it is; a live lease raises SendInFlight
        (that attempt may still be calling the channel)."""
        table = t.contact_attempts
        async with self._engine.begin() as conn:
            query = select(table).where(table.c.idempotency_key == key)
            if self._engine.dialect.name == "postgresql":
                query = query.with_for_update()
            row = (await conn.execute(query)).mappings().first()
            if row is None:
                return None
            if row["status"] not in ("claimed", "in_doubt"):
                return _claim(row)
            if row["status"] == "claimed" and row["lease_until"] is not None \
                    and row["lease_until"] > now and row["lease_owner"] != owner:
                raise SendInFlight(f"attempt {row['lease_owner']} holds the send until "
                                   f"{row['lease_until'].isoformat()}")
            await conn.execute(update(table).where(table.c.idempotency_key == key).values(
                status="claimed", lease_owner=owner, lease_until=now + lease))
            return Claim(status="claimed", lease_until=now + lease, provider_message_id=None,
                         channel_attempts=int(row["channel_attempts"]), fenced_at=None,
                         sent_at=None, error=None)

    async def release(self, key: str, owner: str, status: str, error: str, *,
                      known_unsent: bool = False) -> None:
        """End this attempt's claim without a known message: cancelled, expired or failed -
        or in_doubt when the channel was called before (a dead attempt may have got
        through), unless the channel said it never took it (`known_unsent`)."""
        table = t.contact_attempts
        doubtful = status in ("cancelled", "expired") and not known_unsent
        async with self._engine.begin() as conn:
            await conn.execute(update(table).where(
                table.c.idempotency_key == key, table.c.lease_owner == owner,
                table.c.status == "claimed").values(
                    status=case((table.c.channel_attempts > 0, "in_doubt"), else_=status)
                    if doubtful else status,
                    error=error[:1000], lease_owner=None, lease_until=None))

    async def record_sent(self, req: SendMessage, provider_message_id: str,
                          fenced_at: datetime | None, sent_at: datetime,
                          via: str | None = None) -> None:
        """The channel accepted the message: the row says so, whoever holds the lease,
        and the audit trail gets its contact event. `fenced_at` is None for a message
        found at the channel after its attempt died (when its last check passed is lost
        with it)."""
        table = t.contact_attempts
        async with self._engine.begin() as conn:
            await conn.execute(update(table).where(
                table.c.idempotency_key == req.idempotency_key,
                table.c.status != "sent").values(
                    status="sent", provider_message_id=provider_message_id,
                    fenced_at=fenced_at, sent_at=sent_at, attempted_at=sent_at,
                    sent_via=via, lease_owner=None, lease_until=None, error=None))
            await self._ledger.keep_sent_demand(conn, req.idempotency_key)
            row = await self._row(conn, req.idempotency_key)
            await self._ledger._audit(
                conn, req.idempotency_key, req.case_id, req.loan_id, "contact_attempt",
                f"{req.channel} {req.template} to {req.recipient} (sent): "
                f"{row['subject'] or row['body'][:60]}", SYSTEM, sent_at,
                {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()
                 if k not in ("body", "id")})


def _claim(row: Any) -> Claim:
    return Claim(status=row["status"], lease_until=row["lease_until"],
                 provider_message_id=row["provider_message_id"],
                 channel_attempts=int(row["channel_attempts"]), fenced_at=row["fenced_at"],
                 sent_at=row["sent_at"], error=row["error"])

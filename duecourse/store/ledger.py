"""Idempotent ledger writes and the reads behind `duecourse timeline`.

Each write is one transaction that inserts with ON CONFLICT DO NOTHING on the row's
idempotency key, and mirrors the fact into the append-only `audit_events`; a retried
activity therefore changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.domain import entries
from duecourse.domain.actor import SYSTEM, Actor
from duecourse.domain.case.reopening import LoanAlreadyClosed, reopen_problem
from duecourse.store import tables as t
from duecourse.store.cases import last_closed_case
from duecourse.store.outbox import announce_queued, enqueue_events
from duecourse.temporal.contracts import OpenLoan, OpsAlert, RecordEntries


class ContactRecord(BaseModel):
    """A borrower contact as it was rendered and handed to a channel."""

    idempotency_key: str
    case_id: str
    loan_id: str
    stage: str
    step: str
    channel: str
    template: str
    language: str
    recipient: str
    recipient_kind: str = "debtor"
    purpose: str = "collection"
    subject: str | None
    body: str
    status: str
    provider_message_id: str | None
    scheduled_for: datetime
    attempted_at: datetime


class TimelineItem(BaseModel):
    occurred_at: datetime
    kind: str
    summary: str
    actor: str
    case_id: str
    data: dict[str, Any]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _actor(actor: Actor) -> dict[str, str]:
    return {"actor_kind": actor.kind.value, "actor_id": actor.id}


def summarize(entry: entries.LedgerEntry) -> str:
    """One human line per fact, stored with it so any SQL reader sees the story."""
    if isinstance(entry, entries.StageChanged):
        if entry.outcome:
            return f"closed as {entry.outcome} at DPD {entry.days_past_due}: {entry.reason}"
        origin = f"{entry.from_stage} -> " if entry.from_stage else "entered "
        return f"{origin}{entry.to_stage} at DPD {entry.days_past_due}: {entry.reason}"
    if isinstance(entry, entries.PaymentRecorded):
        extra = f", {entry.overpaid} overpaid" if entry.overpaid else ""
        return (f"payment {entry.reference}: {entry.amount} {entry.currency}{extra}; "
                f"outstanding {entry.outstanding_after} {entry.currency}")
    if isinstance(entry, entries.PromiseRecorded):
        return (f"promise {entry.promise_id} {entry.status.lower()}: {entry.amount} "
                f"{entry.currency} by {entry.due_date}" + (f" ({entry.note})" if entry.note
                                                            else ""))
    if isinstance(entry, entries.ComplianceDecided):
        until = f" until {entry.until.isoformat()}" if entry.until else ""
        why = f" [{entry.code}] {entry.rule}" if entry.code else ""
        return f"{entry.channel} to {entry.recipient} {entry.verdict}{until}{why}"
    if isinstance(entry, entries.ContactLogged):
        return (f"{entry.channel} contact with {entry.recipient_kind} {entry.recipient} by "
                f"{entry.actor}")
    if isinstance(entry, entries.ContactDelivered):
        return (f"message {entry.provider_message_id} accepted by the channel at "
                f"{entry.sent_at.isoformat()} (recorded late: the ledger was down)")
    if isinstance(entry, entries.TaskRecorded):
        task = entry.task
        state = task.status.value + (f" ({task.outcome})" if task.outcome else "")
        return (f"task {task.task_id} {task.kind.value} for {task.assignee}: {state}, due "
                f"{task.due_at.isoformat()}")
    if isinstance(entry, entries.AgreementRecorded):
        return (f"{entry.agreement_type} {entry.agreement_id} {entry.status.lower()}: "
                f"{entry.amount} {entry.currency}")
    details = ", ".join(f"{k}={v}" for k, v in entry.details.items() if v)
    return f"{entry.event.replace('_', ' ')}" + (f": {details}" if details else "")


class Ledger:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # ------------------------------------------------------------ write helpers
    def _dialect(self) -> Any:
        return postgresql if self.engine.dialect.name == "postgresql" else sqlite

    def _insert_ignore(self, table: Table, rows: Sequence[dict[str, Any]]) -> Any:
        return self._dialect().insert(table).values(list(rows)).on_conflict_do_nothing()

    async def _upsert_newer(self, conn: AsyncConnection, table: Table, row: dict[str, Any],
                            keys: list[str]) -> None:
        """Insert, or update when `row` carries a newer version (projections: a retried
        older write can never overwrite a newer one)."""
        stmt = self._dialect().insert(table).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={k: stmt.excluded[k] for k in row if k not in keys},
            where=table.c.version < stmt.excluded.version)
        await conn.execute(stmt)

    async def _insert(self, conn: AsyncConnection, table: Table, row: dict[str, Any]) -> bool:
        result = await conn.execute(self._insert_ignore(table, [row]))
        return bool(result.rowcount)

    async def _audit(self, conn: AsyncConnection, key: str, case_id: str, loan_id: str,
                     kind: str, summary: str, actor: Actor, occurred_at: datetime,
                     data: dict[str, Any]) -> bool:
        return await self._insert(conn, t.audit_events, {
            "idempotency_key": key, "case_id": case_id, "loan_id": loan_id, "kind": kind,
            "summary": summary, **_actor(actor), "occurred_at": occurred_at,
            "recorded_at": _utcnow(), "data": data})

    # ------------------------------------------------------------ writes
    async def open_case(self, cmd: OpenLoan) -> bool:
        """Record the loan (first handover wins) and this collection case.

        Raises LoanAlreadyClosed, writing nothing, when a closed case of the loan covers
        this due date. The check runs in the transaction that inserts the case, after the
        loans insert holds SQLite's write lock (PostgreSQL: with the loan's case rows
        locked), so no race past the front doors' checks can reopen a paid loan.
        """
        loan = cmd.loan
        async with self.engine.begin() as conn:
            await self._insert(conn, t.loans, {
                "loan_id": loan.loan_id, "borrower_id": loan.borrower.borrower_id,
                "borrower_name": loan.borrower.name,
                "borrower": loan.borrower.model_dump(mode="json"),
                "jurisdiction": loan.jurisdiction, "currency": loan.currency,
                "principal": loan.principal, "product": loan.product,
                "first_handed_over_at": cmd.opened_at})
            closed = await last_closed_case(conn, loan.loan_id, excluding=cmd.case_id,
                                            for_update=True)
            problem = reopen_problem(closed, loan)
            if problem is not None:
                raise LoanAlreadyClosed(problem)  # rolls the transaction back
            created = await self._insert(conn, t.collection_cases, {
                "case_id": cmd.case_id, "loan_id": loan.loan_id, "workflow_id": cmd.workflow_id,
                "policy": cmd.policy, "due_date": loan.due_date,
                "outstanding_at_open": loan.outstanding, "currency": loan.currency,
                "opened_at": cmd.opened_at, "compliance": cmd.compliance or None,
                "experiment": cmd.strategy.experiment if cmd.strategy else None,
                "strategy": cmd.strategy.strategy if cmd.strategy else None})
            await self._audit(
                conn, f"{cmd.case_id}:opened", cmd.case_id, loan.loan_id, "case_opened",
                f"handed over: {loan.outstanding} {loan.currency} outstanding, due "
                f"{loan.due_date}, policy {cmd.policy}", SYSTEM, cmd.opened_at,
                {"loan": loan.model_dump(mode="json"), "policy": cmd.policy,
                 "workflow_id": cmd.workflow_id,
                 **({"strategy": cmd.strategy.model_dump()} if cmd.strategy else {})})
        return created

    async def record_entries(self, cmd: RecordEntries) -> int:
        """Write a batch of entries atomically, with an outbox row per outbound event the
        new ones announce and webhook that wants it; returns how many were new. Only new
        entries queue events: a batch retried after its delivery never queues it again."""
        return len(await self.record_new_entries(cmd))

    async def record_new_entries(self, cmd: RecordEntries) -> list[entries.LedgerEntry]:
        """`record_entries`, returning the entries that were new once the transaction
        committed (what metrics count: a retried batch returns none of them again)."""
        async with self.engine.begin() as conn:
            new = [entry for entry in cmd.entries
                   if await self.write_entry(conn, cmd.case_id, cmd.loan_id, entry)]
            queued = await enqueue_events(conn, cmd, new)
        if queued:
            announce_queued()
        return new

    async def write_entry(self, conn: AsyncConnection, case_id: str, loan_id: str,
                          entry: entries.LedgerEntry) -> int:
        """Write one entry (its table row and its audit event) inside `conn`'s
        transaction; 1 when it was new."""
        key = f"{case_id}:{entry.key}"
        base = {"idempotency_key": key, "case_id": case_id, "loan_id": loan_id}
        if isinstance(entry, entries.StageChanged):
            await self._insert(conn, t.stage_transitions, {
                **base, "from_stage": entry.from_stage, "to_stage": entry.to_stage,
                "outcome": entry.outcome, "reason": entry.reason,
                "days_past_due": entry.days_past_due, **_actor(entry.actor),
                "occurred_at": entry.occurred_at})
            if entry.outcome:
                await conn.execute(
                    update(t.collection_cases)
                    .where(t.collection_cases.c.case_id == case_id,
                           t.collection_cases.c.outcome.is_(None))
                    .values(outcome=entry.outcome, closed_at=entry.occurred_at))
        elif isinstance(entry, entries.PaymentRecorded):
            await self._insert(conn, t.payments, {
                **base, "reference": entry.reference, "amount": entry.amount,
                "currency": entry.currency, "applied": entry.applied,
                "overpaid": entry.overpaid, "outstanding_after": entry.outstanding_after,
                "paid_at": entry.paid_at, **_actor(entry.actor),
                "recorded_at": entry.occurred_at})
        elif isinstance(entry, entries.ComplianceDecided):
            await self._insert(conn, t.compliance_decisions, {
                **base, "step": entry.step, "channel": entry.channel,
                "recipient": entry.recipient, "recipient_kind": entry.recipient_kind,
                "purpose": entry.purpose, "proposed_at": entry.proposed_at,
                "verdict": entry.verdict, "until": entry.until,
                "valid_until": entry.valid_until, "code": entry.code, "rule": entry.rule,
                "detail": entry.detail, **_actor(entry.actor)})
        elif isinstance(entry, entries.ContactLogged):
            await self._insert(conn, t.contact_attempts, {
                **base, "stage": entry.stage, "step": entry.step, "channel": entry.channel,
                "template": "-", "language": "-", "recipient": entry.recipient,
                "recipient_kind": entry.recipient_kind, "purpose": entry.purpose,
                "subject": None, "body": f"contact by {entry.actor}",
                "status": "made_by_person", "provider_message_id": None,
                "scheduled_for": entry.occurred_at, "attempted_at": entry.occurred_at,
                "fenced_at": entry.occurred_at, "sent_at": entry.occurred_at})
        elif isinstance(entry, entries.ContactDelivered):
            await conn.execute(
                update(t.contact_attempts)
                .where(t.contact_attempts.c.idempotency_key == key,
                       t.contact_attempts.c.status != "sent")
                .values(status="sent", provider_message_id=entry.provider_message_id,
                        fenced_at=entry.fenced_at, sent_at=entry.sent_at,
                        attempted_at=entry.sent_at, lease_owner=None, error=None))
            await self.keep_sent_demand(conn, key)
        elif isinstance(entry, entries.TaskRecorded):
            task = entry.task
            await self._upsert_newer(conn, t.tasks, {
                "task_id": task.task_id, "case_id": case_id, "loan_id": loan_id,
                "kind": task.kind.value, "subject": task.subject, "assignee": task.assignee,
                "status": task.status.value, "created_at": task.created_at,
                "due_at": task.due_at, "escalated_at": task.escalated_at,
                "outcome": task.outcome, "completed_by":
                str(task.completed_by) if task.completed_by else None,
                "completed_at": task.completed_at, "note": task.note,
                "version": task.version}, ["task_id"])
        elif isinstance(entry, entries.AgreementRecorded):
            await self._upsert_newer(conn, t.agreements, {
                "agreement_id": entry.agreement_id, "case_id": case_id, "loan_id": loan_id,
                "agreement_type": entry.agreement_type, "status": entry.status,
                "amount": entry.amount, "currency": entry.currency, "terms": entry.terms,
                "updated_at": entry.occurred_at, "version": entry.version},
                ["case_id", "agreement_id"])
        elif isinstance(entry, entries.PromiseRecorded):
            await self._insert(conn, t.promises, {
                **base, "promise_id": entry.promise_id, "amount": entry.amount,
                "currency": entry.currency, "due_date": entry.due_date,
                "status": entry.status, "note": entry.note, **_actor(entry.actor),
                "occurred_at": entry.occurred_at})
        kind = entry.event if isinstance(entry, entries.EventRecorded) else (
            "contact_attempt" if isinstance(entry, entries.ContactDelivered) else entry.kind)
        return int(await self._audit(conn, key, case_id, loan_id, kind, summarize(entry),
                                     entry.actor, entry.occurred_at,
                                     entry.model_dump(mode="json")))

    async def find_contact(self, idempotency_key: str) -> ContactRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.contact_attempts).where(
                t.contact_attempts.c.idempotency_key == idempotency_key))).mappings().first()
        return ContactRecord.model_validate(dict(row)) if row else None

    async def record_contact(self, record: ContactRecord) -> bool:
        async with self.engine.begin() as conn:
            created = await self._insert(conn, t.contact_attempts, record.model_dump())
            to = record.subject or record.body[:60]
            await self._audit(
                conn, record.idempotency_key, record.case_id, record.loan_id, "contact_attempt",
                f"{record.channel} {record.template} to {record.recipient} ({record.status}): "
                f"{to}", SYSTEM, record.scheduled_for,
                record.model_dump(mode="json", exclude={"body"}))
        return created

    async def record_alert(self, alert: OpsAlert) -> bool:
        async with self.engine.begin() as conn:
            created = await self._insert(conn, t.ops_alerts, {
                "idempotency_key": alert.idempotency_key, "case_id": alert.case_id,
                "loan_id": alert.loan_id, "subject": alert.subject, "body": alert.body,
                "raised_at": alert.raised_at})
            await self._audit(conn, alert.idempotency_key, alert.case_id, alert.loan_id,
                              "ops_alert", alert.subject, SYSTEM, alert.raised_at,
                              {"subject": alert.subject, "body": alert.body})
        return created

    async def store_document(self, idempotency_key: str, case_id: str, loan_id: str,
                             kind: str, language: str, subject: str | None, body: str,
                             created_at: datetime) -> int:
        """Keep a formal document exactly as sent; the same key yields the same id."""
        async with self.engine.begin() as conn:
            return await self.keep_document(conn, idempotency_key, case_id, loan_id, kind,
                                            language, subject, body, created_at)

    async def keep_document(self, conn: AsyncConnection, idempotency_key: str, case_id: str,
                            loan_id: str, kind: str, language: str, subject: str | None,
                            body: str, created_at: datetime) -> int:
        """`store_document` inside `conn`'s transaction."""
        created = await self._insert(conn, t.documents, {
            "idempotency_key": idempotency_key, "case_id": case_id, "loan_id": loan_id,
            "kind": kind, "language": language, "subject": subject, "body": body,
            "created_at": created_at})
        if created:
            await self._audit(conn, f"{idempotency_key}:document", case_id, loan_id,
                              "document_stored", f"{kind}: {subject or body[:60]}",
                              SYSTEM, created_at, {"kind": kind, "language": language})
        return int((await conn.execute(select(t.documents.c.id).where(
            t.documents.c.idempotency_key == idempotency_key))).scalar_one())

    async def keep_sent_demand(self, conn: AsyncConnection, key: str) -> None:
        """A demand letter the channel accepted is kept as a document, exactly as sent."""
        row = (await conn.execute(select(t.contact_attempts).where(
            t.contact_attempts.c.idempotency_key == key))).mappings().first()
        if row is not None and row["purpose"] == "demand" and row["status"] == "sent":
            await self.keep_document(conn, key, row["case_id"], row["loan_id"],
                                     "demand_letter", row["language"], row["subject"],
                                     row["body"], row["scheduled_for"])

    async def store_outbox_message(self, idempotency_key: str, channel: str, recipient: str,
                                   subject: str | None, body: str) -> int:
        """Keep a message instead of sending it; the same key always yields the same id."""
        async with self.engine.begin() as conn:
            await self._insert(conn, t.outbox_messages, {
                "idempotency_key": idempotency_key, "channel": channel,
                "recipient": recipient, "subject": subject, "body": body,
                "created_at": _utcnow()})
            return (await conn.execute(select(t.outbox_messages.c.id).where(
                t.outbox_messages.c.idempotency_key == idempotency_key))).scalar_one()

    async def outbox_message(self, idempotency_key: str) -> tuple[int, datetime] | None:
        """The outbox row kept under this key (its id and when), if any."""
        table = t.outbox_messages
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(table.c.id, table.c.created_at).where(
                table.c.idempotency_key == idempotency_key))).first()
        return None if row is None else (int(row[0]), row[1])

    # ------------------------------------------------------------ reads
    async def timeline(self, loan_id: str, limit: int = 1000,
                       offset: int = 0) -> list[TimelineItem]:
        """Everything recorded for a loan, oldest first, across all its cases."""
        a = t.audit_events
        query = (select(a).where(a.c.loan_id == loan_id)
                 .order_by(a.c.occurred_at, a.c.id).limit(limit).offset(offset))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [TimelineItem(occurred_at=r["occurred_at"], kind=r["kind"],
                             summary=r["summary"], actor=f"{r['actor_kind']}:{r['actor_id']}",
                             case_id=r["case_id"], data=r["data"]) for r in rows]

    async def tasks(self, assignee: str | None = None, status: str | None = "open",
                    loan_id: str | None = None) -> list[dict[str, Any]]:
        """The work queue, soonest due first."""
        q = select(t.tasks).order_by(t.tasks.c.due_at, t.tasks.c.task_id)
        if assignee:
            q = q.where(t.tasks.c.assignee == assignee)
        if status:
            q = q.where(t.tasks.c.status == status)
        if loan_id:
            q = q.where(t.tasks.c.loan_id == loan_id)
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(q)).mappings().all()]

    async def task(self, task_id: str) -> dict[str, Any] | None:
        """One task by id (its primary key), whatever its status."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.tasks).where(
                t.tasks.c.task_id == task_id))).mappings().first()
        return None if row is None else dict(row)

    async def rows(self, table: Table, **where: Any) -> list[dict[str, Any]]:
        """Plain rows of a ledger table, filtered by equality; for reports and tests."""
        query = select(table).where(*(table.c[k] == v for k, v in where.items()))
        if "id" in table.c:
            query = query.order_by(table.c.id)
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings().all()]

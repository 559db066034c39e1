"""The simulator's ledger: the project's own schema, written in bulk.

Rows are built in memory exactly as `duecourse.store.ledger.Ledger.write_entry` and the
send ledger shape them (same tables, same idempotency keys, an audit event per fact with
the same summary), then inserted a table at a time, a few thousand rows per statement
batch, in one transaction per chunk of loans. The schema itself comes from the project's
Alembic migrations, so every report reads simulated and real ledgers alike. Only the
simulation's own SQLite file runs with `synchronous=OFF`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Engine, Table, create_engine, event

from duecourse.domain import entries as e
from duecourse.domain.actor import SYSTEM, Actor
from duecourse.domain.loan import LoanIntake
from duecourse.store import tables as t
from duecourse.store.database import alembic_config
from duecourse.store.ledger import summarize

Rows = dict[str, list[dict[str, Any]]]
"""Table name -> rows to insert, in order."""

ORDER = ["loans", "collection_cases", "stage_transitions", "payments", "promises",
         "compliance_decisions", "contact_attempts", "tasks", "agreements", "audit_events"]
"""Tables in foreign-key order."""

BODY = "(simulated contact: the simulator does not render messages)"
"""The body of a simulated contact row: nothing was rendered or sent to anyone."""

UNSENT_COLUMNS: dict[str, Any] = {
    "decision_key": None, "not_after": None, "lease_owner": None, "lease_until": None,
    "channel_attempts": 0, "sent_via": None, "segments": None, "encoding": None,
    "error": None}
"""A contact a person made: the send columns the ledger leaves at their defaults (one
bulk insert needs every row to name the same columns)."""


def _actor(actor: Actor) -> dict[str, str]:
    return {"actor_kind": actor.kind.value, "actor_id": actor.id}


class LoanRows:
    """One simulated case's rows; tasks and agreements keep their latest version only,
    as the ledger's upserts do."""

    def __init__(self, loan: LoanIntake, case_id: str, workflow_id: str, policy: str,
                 opened_at: datetime, experiment: str | None, strategy: str | None) -> None:
        self.loan, self.case_id = loan, case_id
        self.rows: Rows = defaultdict(list)
        self._tasks: dict[str, dict[str, Any]] = {}
        self._agreements: dict[str, dict[str, Any]] = {}
        self.rows["loans"].append({
            "loan_id": loan.loan_id, "borrower_id": loan.borrower.borrower_id,
            "borrower_name": loan.borrower.name,
            "borrower": loan.borrower.model_dump(mode="json"),
            "jurisdiction": loan.jurisdiction, "currency": loan.currency,
            "principal": loan.principal, "product": loan.product,
            "first_handed_over_at": opened_at})
        self.case = {
            "case_id": case_id, "loan_id": loan.loan_id, "workflow_id": workflow_id,
            "policy": policy, "due_date": loan.due_date,
            "outstanding_at_open": loan.outstanding, "currency": loan.currency,
            "opened_at": opened_at, "outcome": None, "closed_at": None,
            "compliance": None, "experiment": experiment, "strategy": strategy}
        self.rows["collection_cases"].append(self.case)
        self._audit(f"{case_id}:opened", "case_opened",
                    f"handed over: {loan.outstanding} {loan.currency} outstanding, due "
                    f"{loan.due_date}, policy {policy}", SYSTEM, opened_at,
                    {"loan": loan.model_dump(mode="json"), "policy": policy,
                     "workflow_id": workflow_id})

    def _audit(self, key: str, kind: str, summary: str, actor: Actor, at: datetime,
               data: dict[str, Any]) -> None:
        self.rows["audit_events"].append({
            "idempotency_key": key, "case_id": self.case_id, "loan_id": self.loan.loan_id,
            "kind": kind, "summary": summary, **_actor(actor), "occurred_at": at,
            "recorded_at": at, "data": data})  # recorded in virtual time: reproducible

    def entry(self, entry: e.LedgerEntry) -> None:
        """One fact, as `Ledger.write_entry` records it."""
        key = f"{self.case_id}:{entry.key}"
        base = {"idempotency_key": key, "case_id": self.case_id,
                "loan_id": self.loan.loan_id}
        if isinstance(entry, e.StageChanged):
            self.rows["stage_transitions"].append({
                **base, "from_stage": entry.from_stage, "to_stage": entry.to_stage,
                "outcome": entry.outcome, "reason": entry.reason,
                "days_past_due": entry.days_past_due, **_actor(entry.actor),
                "occurred_at": entry.occurred_at})
            if entry.outcome and self.case["outcome"] is None:
                self.case["outcome"], self.case["closed_at"] = entry.outcome, entry.occurred_at
        elif isinstance(entry, e.PaymentRecorded):
            self.rows["payments"].append({
                **base, "reference": entry.reference, "amount": entry.amount,
                "currency": entry.currency, "applied": entry.applied,
                "overpaid": entry.overpaid, "outstanding_after": entry.outstanding_after,
                "paid_at": entry.paid_at, **_actor(entry.actor),
                "recorded_at": entry.occurred_at})
        elif isinstance(entry, e.ComplianceDecided):
            self.rows["compliance_decisions"].append({
                **base, "step": entry.step, "channel": entry.channel,
                "recipient": entry.recipient, "recipient_kind": entry.recipient_kind,
                "purpose": entry.purpose, "proposed_at": entry.proposed_at,
                "verdict": entry.verdict, "until": entry.until,
                "valid_until": entry.valid_until, "code": entry.code, "rule": entry.rule,
                "detail": entry.detail, **_actor(entry.actor)})
        elif isinstance(entry, e.ContactLogged):
            self.rows["contact_attempts"].append({
                **base, "stage": entry.stage, "step": entry.step, "channel": entry.channel,
                "template": "-", "language": "-", "recipient": entry.recipient,
                "recipient_kind": entry.recipient_kind, "purpose": entry.purpose,
                "subject": None, "body": f"contact by {entry.actor}",
                "status": "made_by_person", "provider_message_id": None,
                "scheduled_for": entry.occurred_at, "attempted_at": entry.occurred_at,
                "fenced_at": entry.occurred_at, "sent_at": entry.occurred_at,
                **UNSENT_COLUMNS})
        elif isinstance(entry, e.TaskRecorded):
            task = entry.task
            row = {"task_id": task.task_id, "case_id": self.case_id,
                   "loan_id": self.loan.loan_id, "kind": task.kind.value,
                   "subject": task.subject, "assignee": task.assignee,
                   "status": task.status.value, "created_at": task.created_at,
                   "due_at": task.due_at, "escalated_at": task.escalated_at,
                   "outcome": task.outcome, "completed_by":
                   str(task.completed_by) if task.completed_by else None,
                   "completed_at": task.completed_at, "note": task.note,
                   "version": task.version}
            known = self._tasks.get(task.task_id)
            if known is None or known["version"] < task.version:
                self._tasks[task.task_id] = row
        elif isinstance(entry, e.AgreementRecorded):
            row = {"agreement_id": entry.agreement_id, "case_id": self.case_id,
                   "loan_id": self.loan.loan_id, "agreement_type": entry.agreement_type,
                   "status": entry.status, "amount": entry.amount,
                   "currency": entry.currency, "terms": entry.terms,
                   "updated_at": entry.occurred_at, "version": entry.version}
            known = self._agreements.get(entry.agreement_id)
            if known is None or known["version"] < entry.version:
                self._agreements[entry.agreement_id] = row
        elif isinstance(entry, e.PromiseRecorded):
            self.rows["promises"].append({
                **base, "promise_id": entry.promise_id, "amount": entry.amount,
                "currency": entry.currency, "due_date": entry.due_date,
                "status": entry.status, "note": entry.note, **_actor(entry.actor),
                "occurred_at": entry.occurred_at})
        kind = entry.event if isinstance(entry, e.EventRecorded) else entry.kind
        self._audit(key, kind, summarize(entry), entry.actor, entry.occurred_at,
                    entry.model_dump(mode="json"))

    def contact(self, key: str, decision_key: str, stage: str, step: str, channel: str,
                template: str, recipient: str, purpose: str, at: datetime,
                not_after: datetime, message_id: str) -> None:
        """A message the simulated channel accepted: the row `send_message` leaves."""
        self.rows["contact_attempts"].append({
            "idempotency_key": key, "case_id": self.case_id, "loan_id": self.loan.loan_id,
            "stage": stage, "step": step, "channel": channel, "template": template,
            "language": self.loan.borrower.language, "recipient": recipient,
            "recipient_kind": "debtor", "purpose": purpose, "subject": None, "body": BODY,
            "status": "sent", "provider_message_id": message_id, "scheduled_for": at,
            "attempted_at": at, "decision_key": decision_key, "not_after": not_after,
            "lease_owner": None, "lease_until": None, "channel_attempts": 1,
            "fenced_at": at, "sent_at": at, "sent_via": "simulator", "segments": None,
            "encoding": None, "error": None})
        self._audit(f"{key}:sent", "contact_attempt",
                    f"{channel} {template} to {recipient} (sent)", SYSTEM, at,
                    {"step": step, "channel": channel, "template": template,
                     "message_id": message_id})

    def finish(self) -> Rows:
        self.rows["tasks"] = list(self._tasks.values())
        self.rows["agreements"] = list(self._agreements.values())
        return self.rows


def create_ledger(path: Path) -> Engine:
    """A new SQLite ledger at `path`, migrated to head the way `duecourse db upgrade`
    does; a sync engine tuned for one bulk writer."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")  # a simulation file: rerun it if lost
        cursor.close()
    with engine.begin() as conn:  # the migrations' env runs on a connection it is given
        command.upgrade(alembic_config(conn), "head")
    return engine


TABLES: dict[str, Table] = {name: getattr(t, name) for name in ORDER}


def write_rows(engine: Engine, chunks: list[Rows]) -> int:
    """Insert the chunks' rows (in chunk order) in one transaction; returns rows written."""
    merged: Rows = defaultdict(list)
    for chunk in chunks:
        for name, rows in chunk.items():
            merged[name].extend(rows)
    written = 0
    with engine.begin() as conn:
        for name in ORDER:
            rows = merged.get(name)
            if rows:
                conn.execute(TABLES[name].insert(), rows)
                written += len(rows)
    return written

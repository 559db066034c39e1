"""A borrower's data for an access request (GDPR Art. 15, PIPL art. 45): one JSON document.

Everything the ledger holds about the borrower's loans, case by case: the loan as handed
over, stage changes, every message sent (with its body), the compliance decisions behind
them, payments, promises, agreements, tasks, formal documents, alerts and the full audit
trail (which carries their preferences, disputes, holds and life events); per loan, their
SMS replies and providers' receipts, bounces and unreachable marks; and their consent
history. Internal
bookkeeping (leases, idempotency keys, row versions) is left out. A case pseudonymised
after retention exports its pseudonyms and says so.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.domain.money import minor_units
from duecourse.store import tables as t

SCHEMA = "duecourse.borrower-export/1"

PSEUDONYMISED_NOTICE = (
    "Some records were kept past their retention period and their personal data was "
    "replaced by keyed pseudonyms ('hmac:<key id>:<hex>'); the original values are no "
    "longer held. Amounts, dates, stages and decisions are as recorded.")

INTERNAL = frozenset({"id", "idempotency_key", "lease_owner", "lease_until", "decision_key",
                      "channel_attempts", "version", "case_id", "loan_id"})

SECTIONS: dict[str, Table] = {
    "stage_changes": t.stage_transitions,
    "contacts": t.contact_attempts,
    "compliance_decisions": t.compliance_decisions,
    "payments": t.payments,
    "provider_payments": t.provider_payments,
    "promises": t.promises,
    "agreements": t.agreements,
    "tasks": t.tasks,
    "documents": t.documents,
    "alerts": t.ops_alerts,
    "agent_calls": t.agent_calls,
    "history": t.audit_events,
}

LOAN_SECTIONS: dict[str, Table] = {
    "replies": t.inbound_replies,
    "delivery_receipts": t.delivery_receipts,
    "unreachable_addresses": t.unreachable_addresses,
}
"""What came back about a loan (the borrower's SMS replies and what providers said of our
messages to them), kept by loan rather than by case."""

INBOUND_INTERNAL = INTERNAL | {"dedup_key", "claimed_until", "attempt_id"}


class UnknownBorrower(LookupError):
    """No loan in the ledger belongs to the borrower."""


class AmbiguousBorrower(ValueError):
    """The borrower id is used by more than one platform's loans: name the platform."""


def plain(value: Any) -> Any:
    """JSON-ready: money as exact strings, instants and dates in ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


async def _rows(conn: AsyncConnection, table: Table, drop: frozenset[str] = INTERNAL,
                **where: Any) -> list[dict[str, Any]]:
    query = select(table).where(*(table.c[k] == v for k, v in where.items()))
    order = [c for c in ("occurred_at", "scheduled_for", "proposed_at", "paid_at",
                         "created_at", "updated_at", "raised_at") if c in table.c]
    query = query.order_by(*(table.c[c] for c in order[:1]),
                           *(table.c[c] for c in ("id",) if c in table.c))
    return [{k: plain(_scaled(v, r.get("currency"))) for k, v in r.items()
             if k not in drop and not isinstance(v, bytes)}  # a letter's PDF: by its sha256
            for r in (await conn.execute(query)).mappings()]


def _scaled(value: Any, currency: str | None) -> Any:
    """Money in its currency's minor units, whatever scale the backend returns it at."""
    if isinstance(value, Decimal) and currency:
        return value.quantize(Decimal(1).scaleb(-minor_units(currency)))
    return value


async def export_borrower(engine: AsyncEngine, borrower_id: str, exported_at: datetime,
                          platform: str | None = None) -> dict[str, Any]:
    """The export document; raises UnknownBorrower when no loan is theirs.

    A borrower id is a platform's own id, so two platforms' "B-1" are two people: the
    export covers one owner's loans (`platform`, or the lender's own when the id is
    unambiguous) and refuses to merge owners rather than disclose one person's data to
    another."""
    async with engine.connect() as conn:
        loans = await _rows(conn, t.loans, INTERNAL - {"loan_id"}, borrower_id=borrower_id)
        owners = dict((await conn.execute(select(
            t.loan_owners.c.loan_id, t.loan_owners.c.platform).where(
            t.loan_owners.c.loan_id.in_([loan["loan_id"] for loan in loans])))).all())
        every = {loan["loan_id"] for loan in loans}
        if platform is not None:
            loans = [loan for loan in loans if owners.get(loan["loan_id"]) == platform]
        elif len({owners.get(loan["loan_id"]) for loan in loans}) > 1:
            raise AmbiguousBorrower(
                f"borrower id {borrower_id} is used by loans of more than one platform (and "
                "may be more than one person): name the platform with --platform")
        if not loans:
            whose = f" of platform {platform}" if platform is not None else ""
            raise UnknownBorrower(f"no loan{whose} in the ledger belongs to borrower "
                                  f"{borrower_id}")
        pseudonymised = False
        for loan in loans:
            c = t.collection_cases
            cases = (await conn.execute(select(c).where(c.c.loan_id == loan["loan_id"])
                                        .order_by(c.c.opened_at, c.c.case_id))).mappings()
            loan["cases"] = []
            for case in cases.all():
                case_id = case["case_id"]
                record = (await conn.execute(select(t.pseudonymised_cases).where(
                    t.pseudonymised_cases.c.case_id == case_id))).mappings().first()
                entry = {k: plain(v) for k, v in case.items() if k != "loan_id"}
                entry["pseudonymised"] = None if record is None else {
                    "at": plain(record["completed_at"]), "run_id": record["run_id"],
                    "key_id": record["key_id"], "columns": record["columns"]}
                pseudonymised |= record is not None
                for section, table in SECTIONS.items():
                    entry[section] = await _rows(conn, table, case_id=case_id)
                loan["cases"].append(entry)
            for section, table in LOAN_SECTIONS.items():
                loan[section] = await _rows(conn, table, INBOUND_INTERNAL,
                                            loan_id=loan["loan_id"])
        consents = await _consents(conn, borrower_id, [loan["loan_id"] for loan in loans],
                                   all_loans=len(loans) == len(every))
    document: dict[str, Any] = {
        "schema": SCHEMA, "exported_at": exported_at.isoformat(),
        "borrower_id": borrower_id, "pseudonymised": pseudonymised}
    if pseudonymised:
        document["notice"] = PSEUDONYMISED_NOTICE
    document["loans"] = loans
    document["consents"] = consents
    return document


async def _consents(conn: AsyncConnection, borrower_id: str, loan_ids: list[str],
                    all_loans: bool) -> list[dict[str, Any]]:
    """The borrower's consent history, oldest first: the rows about the exported loans,
    and rows naming no loan only when every loan under this borrower id is exported (a
    shared id across platforms may be another person)."""
    k = t.consents
    rows = await _rows(conn, k, INBOUND_INTERNAL - {"loan_id"}, borrower_id=borrower_id)
    return [row for row in rows
            if row["loan_id"] in loan_ids or (row["loan_id"] is None and all_loans)]


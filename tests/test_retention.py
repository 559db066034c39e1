"""Retention and the borrower's export on a real ledger (SQLite, and PostgreSQL when up).

Four loans: a CN case closed 2 years and 2 months ago (due: CN keeps 2 years), a US case
closed 2.5 years ago (kept: the US keeps 3), a case still open, and a CN case closed last
month. Only the first is pseudonymised, everywhere in the ledger, verifiably, with its
audit trail intact; a second run changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from duecourse.domain.actor import SYSTEM, Actor, ActorKind
from duecourse.domain.entries import (
    ComplianceDecided,
    EventRecorded,
    PaymentRecorded,
    PromiseRecorded,
    StageChanged,
)
from duecourse.inbound.store import Attempt, InboundStore
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.borrower_export import (
    SCHEMA,
    AmbiguousBorrower,
    UnknownBorrower,
    export_borrower,
)
from duecourse.store.ledger import ContactRecord
from duecourse.store.owners import LoanOwners
from duecourse.store.pseudonyms import parse_keys
from duecourse.store.retention import (
    RetentionError,
    retention_periods,
    run_retention,
    years_for,
)
from duecourse.temporal.contracts import OpenLoan, OpsAlert, RecordEntries
from tests.factories import AGENT, make_loan
from tests.test_ledger import engine as ledger_engine

db = ledger_engine
"""The ledger tests' engine: SQLite, and PostgreSQL in its own schema when one answers."""

SECRET = bytes(range(32))
KEYS = parse_keys(f"r-test:{base64.b64encode(SECRET).decode()}", "the test key")
NOW = datetime.now(UTC)
TODAY = NOW.date()


def person(n: int) -> dict[str, Any]:
    return {"name": f"Borrower{n} Testperson", "phones": [f"+861390000{n:04d}"],
            "email": f"borrower{n}.private@example.com",
            "address": f"{n} Hidden Lane, Secret City", "timezone": "Asia/Shanghai"}


def pii(n: int) -> list[str]:
    p = person(n)
    return [p["name"], p["phones"][0], p["email"], p["address"]]


async def _case(ledger: Ledger, n: int, jurisdiction: str,
                closed_at: datetime | None) -> OpenLoan:
    """A loan with one case that was contacted, decided on, promised, paid and alerted
    about; closed (PAID) at `closed_at`, or still open."""
    opened = (closed_at or NOW) - timedelta(days=40)
    loan = make_loan(opened, dpd=5, jurisdiction=jurisdiction,
                     currency="USD" if jurisdiction == "US" else "CNY", **person(n))
    cmd = OpenLoan(case_id=f"case-{n}-{loan.loan_id}", workflow_id=loan.workflow_id,
                   loan=loan, policy="standard@1", opened_at=opened)
    assert await ledger.open_case(cmd)
    b, at = loan.borrower, opened + timedelta(days=1)
    key = f"{cmd.case_id}:contact:1:sms"
    entries: list[Any] = [
        StageChanged(key="stage:1", occurred_at=opened, actor=SYSTEM, from_stage=None,
                     to_stage="REMINDER", reason="handed over", days_past_due=5),
        ComplianceDecided(key="decision:1", occurred_at=at, actor=SYSTEM, step="sms",
                          channel="sms", recipient=b.phones[0], recipient_kind="debtor",
                          purpose="collection", proposed_at=at, verdict="allowed",
                          code="ok", rule="within contact hours",
                          detail=f"{b.phones[0]} may be texted now"),
        EventRecorded(key="event:1", occurred_at=at, actor=AGENT, event="attorney_represents",
                      details={"attorney": {"name": f"Counsel Q{n}",
                                            "contact": f"q{n}@law.example"},
                               "note": f"{b.name} asked us to write to {b.email}"}),
        PromiseRecorded(key="promise:1", occurred_at=at, actor=AGENT, promise_id="P1",
                        amount=Decimal("100.00"), currency=loan.currency,
                        due_date=at.date(), status="KEPT",
                        note=f"call {b.phones[0]} after 6pm"),
        PaymentRecorded(key="payment:R1", occurred_at=at, actor=SYSTEM, reference=f"R{n}",
                        amount=Decimal("1000.00"), currency=loan.currency, paid_at=at,
                        applied=Decimal("1000.00"), overpaid=Decimal("0.00"),
                        outstanding_after=Decimal("0.00")),
    ]
    if closed_at is not None:
        entries.append(StageChanged(key="closed", occurred_at=closed_at, actor=SYSTEM,
                                    from_stage="REMINDER", to_stage=None, outcome="PAID",
                                    reason="paid in full", days_past_due=6))
    await ledger.record_entries(RecordEntries(case_id=cmd.case_id, workflow_id=cmd.workflow_id,
                                              loan_id=loan.loan_id, entries=entries))
    body = f"Hi {b.name}, 1000.00 {loan.currency} on loan {loan.loan_id} is overdue."
    message = await ledger.store_outbox_message(key, "sms", b.phones[0], None, body)
    await ledger.record_contact(ContactRecord(
        idempotency_key=key, case_id=cmd.case_id, loan_id=loan.loan_id, stage="REMINDER",
        step="sms", channel="sms", template="overdue_notice", language="en",
        recipient=b.phones[0], subject=None, body=body, status="sent",
        provider_message_id=f"outbox-{message}", scheduled_for=at, attempted_at=at))
    await ledger.record_alert(OpsAlert(
        idempotency_key=f"{cmd.case_id}:alert:1", case_id=cmd.case_id, loan_id=loan.loan_id,
        workflow_id=cmd.workflow_id,
        subject=f"bounced email to {b.email}", body=f"check the address of {b.name}",
        raised_at=at))
    await ledger.store_document(f"{cmd.case_id}:demand", cmd.case_id, loan.loan_id,
                                "demand_letter", "en", "Formal demand",
                                f"{b.name}\n{b.address}\nYou owe 1000.00.", at)
    async with ledger.engine.begin() as conn:  # an agent's call through the dialer
        await conn.execute(t.agent_calls.insert().values(
            idempotency_key=f"{cmd.case_id}:agent-call:1", case_id=cmd.case_id,
            loan_id=loan.loan_id, call_id=f"call-{n}", recipient=b.phones[0],
            recipient_kind="third_party", person=f"Counsel Q{n}", actor_kind="agent",
            actor_id="agent-1", dialer="dialer:test", decision={"verdict": "allowed"},
            requested_at=at, placed_at=at))
    return cmd


async def dump(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every ledger table, as text-comparable dicts."""
    out = {}
    async with engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            rows = (await conn.execute(select(table))).mappings().all()
            out[table.name] = [{k: str(v) for k, v in r.items()} for r in rows]
    return out


def mentions(snapshot: dict[str, list[dict[str, Any]]], value: str) -> list[str]:
    return [f"{name}.{k}" for name, rows in snapshot.items() for row in rows
            for k, v in row.items() if value in v or value in json.dumps(v)]


def hmac_of(value: str) -> str:
    digest = hmac.new(SECRET, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    return f"hmac:r-test:{digest}"


async def test_only_the_case_past_its_period_is_pseudonymised(db: AsyncEngine) -> None:
    ledger = Ledger(db)
    old_cn = await _case(ledger, 1, "CN", NOW - timedelta(days=365 * 2 + 60))
    mid_us = await _case(ledger, 2, "US", NOW - timedelta(days=365 * 2 + 182))
    still_open = await _case(ledger, 3, "CN", None)
    recent = await _case(ledger, 4, "CN", NOW - timedelta(days=30))
    await asyncio.sleep(0)
    audit_before = await ledger.rows(t.audit_events, case_id=old_cn.case_id)
    payments_before = await ledger.rows(t.payments, case_id=old_cn.case_id)
    stages_before = await ledger.rows(t.stage_transitions, case_id=old_cn.case_id)

    dry = await run_retention(db, None, retention_periods(None), TODAY, dry_run=True)
    assert (dry.pseudonymised, dry.cases) == (1, [old_cn.case_id])
    assert mentions(await dump(db), pii(1)[0]), "a dry run changes nothing"

    summary = await run_retention(db, KEYS, retention_periods(None), TODAY)
    assert summary.cases == [old_cn.case_id] and summary.loans_completed == 1
    assert (summary.open_cases, summary.within_period) == (1, 2)
    after = await dump(db)
    for value in [*pii(1), "Counsel Q1", "q1@law.example"]:
        assert mentions(after, value) == [], f"{value!r} is still in the ledger"
    for n in (2, 3, 4):  # the others keep every value
        for value in pii(n):
            assert mentions(after, value), (n, value)

    # verifiable: an auditor with the value and the key gets the same pseudonym
    [loan] = await ledger.rows(t.loans, loan_id=old_cn.loan.loan_id)
    assert loan["borrower_name"] == hmac_of(pii(1)[0])
    assert loan["borrower"]["phones"] == [hmac_of(pii(1)[1])]
    assert loan["borrower"]["email"] == hmac_of(pii(1)[2])
    assert loan["borrower"]["timezone"] == "Asia/Shanghai", "not personal: kept"
    [contact] = await ledger.rows(t.contact_attempts, case_id=old_cn.case_id)
    assert contact["recipient"] == hmac_of(pii(1)[1])
    assert KEYS.matches(pii(1)[1], contact["recipient"])
    assert not KEYS.matches("+8613900009999", contact["recipient"])
    [decision] = await ledger.rows(t.compliance_decisions, case_id=old_cn.case_id)
    assert decision["detail"] == f"{hmac_of(pii(1)[1])} may be texted now"
    assert (decision["verdict"], decision["rule"]) == ("allowed", "within contact hours")

    # the audit trail is intact: same rows, kinds, times and actors; amounts untouched
    audit_after = await ledger.rows(t.audit_events, case_id=old_cn.case_id)
    fixed = ("id", "idempotency_key", "kind", "actor_kind", "actor_id", "occurred_at")
    assert [{k: r[k] for k in fixed} for r in audit_after] == \
        [{k: r[k] for k in fixed} for r in audit_before]
    assert await ledger.rows(t.payments, case_id=old_cn.case_id) == payments_before
    assert await ledger.rows(t.stage_transitions, case_id=old_cn.case_id) == stages_before
    [record] = await ledger.rows(t.pseudonymised_cases, case_id=old_cn.case_id)
    assert record["run_id"] == summary.run_id and record["completed_at"] is not None
    assert {"loans.borrower_name", "contact_attempts.body", "audit_events.data",
            "outbox_messages.recipient", "documents.body"} <= set(record["columns"])
    with pytest.raises(DBAPIError, match="append-only"):  # and stays append-only
        async with db.begin() as conn:
            await conn.execute(update(t.audit_events).values(summary="rewritten")
                               .where(t.audit_events.c.case_id == old_cn.case_id))

    again = await run_retention(db, KEYS, retention_periods(None), TODAY)
    assert (again.pseudonymised, again.already_done) == (0, 1)
    assert await dump(db) == after, "a second run changes nothing"
    del mid_us, still_open, recent


async def test_the_export_holds_the_borrowers_data_and_nobody_elses(db: AsyncEngine) -> None:
    ledger = Ledger(db)
    mine = await _case(ledger, 5, "US", NOW - timedelta(days=10))
    theirs = await _case(ledger, 6, "US", NOW - timedelta(days=10))
    document = await export_borrower(db, mine.loan.borrower.borrower_id, NOW)
    text = json.dumps(document)
    assert document["schema"] == SCHEMA and document["pseudonymised"] is False
    [loan] = document["loans"]
    assert loan["loan_id"] == mine.loan.loan_id and loan["borrower"]["name"] == pii(5)[0]
    [case] = loan["cases"]
    assert case["contacts"][0]["body"].startswith(f"Hi {pii(5)[0]},")
    assert [p["amount"] for p in case["payments"]] == ["1000.00"]
    assert case["promises"][0]["note"] == f"call {pii(5)[1]} after 6pm"
    assert case["compliance_decisions"][0]["verdict"] == "allowed"
    assert "attorney_represents" in [e["kind"] for e in case["history"]]
    for value in [*pii(6), theirs.loan.loan_id, theirs.case_id]:
        assert value not in text, f"another borrower's {value!r} in the export"
    with pytest.raises(UnknownBorrower, match="no loan in the ledger belongs"):
        await export_borrower(db, "B-nobody", NOW)


async def test_two_platforms_borrower_ids_are_two_people_in_an_export(db: AsyncEngine) -> None:
    """A borrower id is a platform's own id: the same "B-..." at two platforms must never
    merge into one access-request file."""
    ledger, shared = Ledger(db), f"B-shared-{uuid4().hex[:8]}"
    loans = []
    for n, platform in ((8, "acme"), (9, "globex")):
        loan = make_loan(NOW, dpd=5, borrower_id=shared, **person(n))
        assert await ledger.open_case(OpenLoan(
            case_id=f"case-{n}-{loan.loan_id}", workflow_id=loan.workflow_id, loan=loan,
            policy="standard@1", opened_at=NOW))
        await LoanOwners(db).claim(platform, [loan.loan_id])
        loans.append(loan)
    with pytest.raises(AmbiguousBorrower, match="--platform"):
        await export_borrower(db, shared, NOW)
    document = await export_borrower(db, shared, NOW, platform="acme")
    assert [loan["loan_id"] for loan in document["loans"]] == [loans[0].loan_id]
    assert not any(value in json.dumps(document) for value in pii(9))
    with pytest.raises(UnknownBorrower, match="of platform initech"):
        await export_borrower(db, shared, NOW, platform="initech")


async def test_a_pseudonymised_borrower_exports_the_pseudonyms_and_says_so(
        db: AsyncEngine) -> None:
    ledger = Ledger(db)
    old = await _case(ledger, 7, "CN", NOW - timedelta(days=365 * 3))
    await run_retention(db, KEYS, retention_periods(None), TODAY)
    document = await export_borrower(db, old.loan.borrower.borrower_id, NOW)
    assert document["pseudonymised"] is True and "pseudonyms" in document["notice"]
    [loan] = document["loans"]
    assert loan["borrower_name"] == hmac_of(pii(7)[0])
    assert loan["cases"][0]["pseudonymised"]["key_id"] == "r-test"
    assert not any(value in json.dumps(document) for value in pii(7))


def test_retention_periods_default_override_and_refuse_with_a_sentence() -> None:
    periods = retention_periods('{"GB": 7, "de": 10}')
    assert (periods["CN"], periods["US"], periods["GB"], periods["DE"]) == (2, 3, 7, 10)
    assert years_for(periods, "US-CA") == 3 and years_for(retention_periods(None), "FR") is None
    assert years_for(retention_periods('{"*": 5}'), "FR") == 5
    for text, words in (('{"CN": 1}', "less than the 2 its law requires"),
                        ('{"Mars": 3}', "not a jurisdiction"),
                        ('{"GB": "six"}', "whole number of years"),
                        ("GB=6", "JSON object")):
        with pytest.raises(RetentionError, match=words):
            retention_periods(text)


async def _cli(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={
            **os.environ, "COLUMNS": "250", "NO_COLOR": "1",
            "DUECOURSE_DATA_DIR": str(tmp_path), **env})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_commands_run_export_and_refuse_with_sentences(tmp_path: Path) -> None:
    code, _, err = await _cli(tmp_path, "db", "upgrade")
    assert code == 0, err
    code, _, err = await _cli(tmp_path, "export", "B-nobody")
    assert code == 1 and "no loan in the ledger belongs to borrower B-nobody" in err
    code, _, err = await _cli(tmp_path, "retention", "run")
    assert code == 1 and "DUECOURSE_RETENTION_KEY" in err, err
    code, _, err = await _cli(tmp_path, "retention", "run", "--dry-run",
                              DUECOURSE_RETENTION_YEARS='{"CN": 1}')
    assert code == 1 and "less than the 2" in err, err
    code, out, err = await _cli(tmp_path, "retention", "new-key")
    assert code == 0 and "added key" in out, err
    code, out, err = await _cli(tmp_path, "retention", "run", "--json")
    assert code == 0 and json.loads(out)["pseudonymised"] == 0, err


async def _inbound(db: AsyncEngine, cmd: OpenLoan, n: int) -> None:
    """What came back for the loan: a reply quoting the borrower, a bounce naming their
    email, their number marked unreachable, and a consent note with the number."""
    store, b, loan_id = InboundStore(db), cmd.loan.borrower, cmd.loan.loan_id
    reply_id, _ = await store.record_reply({
        "dedup_key": f"generic:reply-{loan_id}", "profile": "generic", "sender": b.phones[0],
        "receiver": "+8610690000", "text": f"this is {b.name}, write to {b.email}",
        "received_at": NOW, "kind": "other"})
    await store.finish_reply(reply_id, loan_id, "engaged")
    [contact] = await Ledger(db).rows(t.contact_attempts, case_id=cmd.case_id)
    attempt = Attempt(contact["id"], loan_id, cmd.case_id, "sms", b.phones[0])
    assert await store.record_receipt(contact["provider_message_id"], "bounced",
                                      f"hard: 550 {b.email} unknown", attempt)
    assert await store.mark_unreachable("sms", b.phones[0], f"21211 for {b.phones[0]}",
                                        loan_id)
    await store.record_consent(b.borrower_id, loan_id, "sms", "withdrawn", "sms_reply",
                               Actor(kind=ActorKind.BORROWER, id=b.borrower_id),
                               note=f"STOP from {b.phones[0]}")
    del n


async def test_replies_receipts_marks_and_consents_go_with_the_loans_last_case(
        db: AsyncEngine) -> None:
    ledger = Ledger(db)
    old = await _case(ledger, 21, "CN", NOW - timedelta(days=365 * 3))
    live = await _case(ledger, 22, "CN", None)
    await _inbound(db, old, 21)
    await _inbound(db, live, 22)
    # the old loan was told the live loan's number is invalid: the mark must outlive it
    store = InboundStore(db)
    assert await store.mark_unreachable("email", person(22)["email"], "hard bounce",
                                        old.loan.loan_id)
    await run_retention(db, KEYS, retention_periods(None), TODAY)
    after = await dump(db)
    for value in pii(21):
        assert mentions(after, value) == [], f"{value!r} is still in the ledger"
    for value in pii(22)[:3]:
        assert mentions(after, value), value
    [reply] = await ledger.rows(t.inbound_replies, loan_id=old.loan.loan_id)
    assert reply["sender"] == hmac_of(pii(21)[1]) and reply["outcome"] == "engaged"
    [mark] = await ledger.rows(t.unreachable_addresses, loan_id=old.loan.loan_id)
    assert mark["address"] == hmac_of(pii(21)[1])
    assert await store.is_unreachable("email", person(22)["email"]), "handed over, kept"
    assert [m["address"] for m in await ledger.rows(
        t.unreachable_addresses, loan_id=live.loan.loan_id)] == [pii(22)[1], pii(22)[2]]
    assert await store.is_unreachable("sms", pii(22)[1])
    [consent] = await ledger.rows(t.consents, loan_id=old.loan.loan_id)
    assert (consent["action"], consent["source"]) == ("withdrawn", "sms_reply")
    [record] = await ledger.rows(t.pseudonymised_cases, case_id=old.case_id)
    assert {"inbound_replies.text", "delivery_receipts.error", "consents.note",
            "unreachable_addresses.address"} <= set(record["columns"])


async def test_the_export_carries_replies_receipts_marks_and_consent_history(
        db: AsyncEngine) -> None:
    ledger = Ledger(db)
    mine = await _case(ledger, 23, "US", NOW - timedelta(days=10))
    theirs = await _case(ledger, 24, "US", NOW - timedelta(days=10))
    await _inbound(db, mine, 23)
    await _inbound(db, theirs, 24)
    document = await export_borrower(db, mine.loan.borrower.borrower_id, NOW)
    [loan] = document["loans"]
    [reply] = loan["replies"]
    assert reply["text"] == f"this is {pii(23)[0]}, write to {pii(23)[2]}"
    assert "dedup_key" not in reply and "claimed_until" not in reply
    assert [r["status"] for r in loan["delivery_receipts"]] == ["bounced"]
    assert [u["address"] for u in loan["unreachable_addresses"]] == [pii(23)[1]]
    assert [(c["channel"], c["action"], c["source"], c["loan_id"])
            for c in document["consents"]] == [("sms", "withdrawn", "sms_reply",
                                                mine.loan.loan_id)]
    assert not any(value in json.dumps(document) for value in pii(24))


async def test_replies_and_receipts_of_no_loan_go_after_the_longest_period(
        db: AsyncEngine) -> None:
    """An unknown sender's reply and a receipt for a message we do not know name no loan,
    so no case's retention takes them; past the longest period they are pseudonymised,
    once, and younger ones are kept."""
    store, tag = InboundStore(db), uuid4().hex[:8]
    old_number, new_number = f"+86139{tag[:5]}11", f"+86139{tag[:5]}22"
    for number, days in ((old_number, 365 * 7), (new_number, 30)):
        reply_id, _ = await store.record_reply({
            "dedup_key": f"generic:unknown-{tag}-{days}", "profile": "generic",
            "sender": number, "receiver": "+8610690000",
            "text": f"who is this? I am Stranger{tag}, {number}",
            "received_at": NOW - timedelta(days=days), "kind": "other"})
        await store.finish_reply(reply_id, None, "unknown_sender")
        assert await store.record_receipt(f"msg-{tag}-{days}", "bounced",
                                          f"550 stranger{tag}-{days}@example.com unknown",
                                          None)
        async with db.begin() as conn:  # a receipt is stamped on arrival: backdate it
            await conn.execute(update(t.delivery_receipts).where(
                t.delivery_receipts.c.provider_message_id == f"msg-{tag}-{days}").values(
                received_at=NOW - timedelta(days=days)))
    dry = await run_retention(db, None, retention_periods(None), TODAY, dry_run=True)
    assert dry.unmatched >= 2
    summary = await run_retention(db, KEYS, retention_periods(None), TODAY)
    assert summary.unmatched >= 2
    after = await dump(db)
    assert mentions(after, old_number) == [] and mentions(after, f"-{365 * 7}@") == []
    assert mentions(after, f"Stranger{tag}") != [], "the young reply is kept as it came"
    assert mentions(after, new_number) and mentions(after, "-30@example.com")
    [old] = [r for r in await Ledger(db).rows(t.inbound_replies)
             if r["dedup_key"] == f"generic:unknown-{tag}-{365 * 7}"]
    assert old["sender"] == hmac_of(old_number) and old["outcome"] == "unknown_sender"
    again = await run_retention(db, KEYS, retention_periods(None), TODAY)
    assert again.unmatched == 0 and await dump(db) == after

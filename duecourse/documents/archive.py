"""A letter's PDF kept with its case, once per key: the exact bytes the print house got."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from duecourse.documents.pdf import MIME
from duecourse.store import tables as t
from duecourse.store.ledger import Ledger

KIND = "letter"


@dataclass(frozen=True)
class StoredLetter:
    pdf: bytes
    sha256: str
    created_at: datetime


def document_key(idempotency_key: str) -> str:
    """The letter's documents row key: its own, so a demand letter's text document (kept
    under the send's key when it is recorded sent) lives beside the PDF."""
    return f"{idempotency_key}:letter"


async def stored_letter(ledger: Ledger, idempotency_key: str) -> StoredLetter | None:
    """The PDF kept under the message's key, if any."""
    d = t.documents.c
    async with ledger.engine.connect() as conn:
        row = (await conn.execute(select(d.pdf, d.sha256, d.created_at).where(
            d.idempotency_key == document_key(idempotency_key),
            d.pdf.is_not(None)))).first()
    return None if row is None else StoredLetter(bytes(row.pdf), row.sha256, row.created_at)


async def keep_letter(ledger: Ledger, idempotency_key: str, case_id: str, loan_id: str,
                      language: str, subject: str | None, body: str, pdf: bytes,
                      created_at: datetime) -> StoredLetter:
    """Keep the PDF; a concurrent or earlier attempt's PDF under the key wins, and is
    returned, so every attempt hands the print house the same bytes."""
    key = document_key(idempotency_key)
    async with ledger.engine.begin() as conn:
        await ledger.keep_document(conn, key, case_id, loan_id, KIND, language, subject, body,
                                   created_at)
        await conn.execute(update(t.documents).where(
            t.documents.c.idempotency_key == key, t.documents.c.pdf.is_(None)).values(
            pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(), mime=MIME))
    kept = await stored_letter(ledger, idempotency_key)
    assert kept is not None, "the letter's document was written in the transaction above"
    return kept

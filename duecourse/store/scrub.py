"""Which ledger columns hold personal data, and how a value in each is pseudonymised.

Three treatments: an identifying value (a name, phone, email, address, a recipient) or a
message's content (bodies and subjects, people's free-text notes) is replaced whole by its
pseudonym; other text (audit summaries, reasons, details, JSON strings) keeps its words,
with every personal value known for the case replaced where it occurs. Amounts, dates,
stages, rules, decisions, ids and statuses are never touched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from duecourse.store.pseudonyms import PSEUDONYM, PseudonymKeys

WHOLE, TEXT, JSON_DOC, JSON_TEXT, DROP = "whole", "text", "json", "json-text", "drop"
"""DROP: content that cannot be pseudonymised in place (a letter's PDF) is removed; its
sha256 stays, so the document sent remains provable against a copy."""

CASE_COLUMNS: dict[str, dict[str, str]] = {
    "collection_cases": {"compliance": JSON_DOC},
    "stage_transitions": {"reason": TEXT},
    "contact_attempts": {"recipient": WHOLE, "subject": WHOLE, "body": WHOLE,
                         "error": TEXT},
    "compliance_decisions": {"recipient": WHOLE, "detail": TEXT},
    "promises": {"note": WHOLE},
    "tasks": {"subject": TEXT, "note": WHOLE},
    "agreements": {"terms": JSON_DOC},
    "documents": {"subject": WHOLE, "body": WHOLE, "pdf": DROP},
    "ops_alerts": {"subject": TEXT, "body": TEXT, "note": WHOLE},
    "audit_events": {"summary": TEXT, "data": JSON_DOC},
    "agent_calls": {"recipient": WHOLE, "person": WHOLE},
}
"""Tables with a case_id, and their columns that can hold personal data."""

KEYED_COLUMNS: dict[str, tuple[str, dict[str, str]]] = {
    "outbox_messages": ("idempotency_key", {"recipient": WHOLE, "subject": WHOLE,
                                            "body": WHOLE}),
    "webhook_outbox": ("event_id", {"body": JSON_TEXT}),
    "webhook_deliveries": ("event_id", {"last_error": TEXT}),
}
"""Tables without a case_id whose key column starts `<case_id>:`."""

LOAN_COLUMNS = {"borrower_name": WHOLE, "borrower": JSON_DOC}
"""The loans row: pseudonymised with the last of the loan's cases."""

LOAN_KEYED_COLUMNS: dict[str, dict[str, str]] = {
    "inbound_replies": {"sender": WHOLE, "text": WHOLE, "answer_error": TEXT},
    "delivery_receipts": {"error": TEXT, "dedup_key": TEXT},
    "unreachable_addresses": {"address": WHOLE, "reason": TEXT},
    "consents": {"note": WHOLE},
}
"""Tables with a loan_id but no case_id (what came back from providers and borrowers):
pseudonymised with the loans row, since a row cannot say which case it belongs to. A
receipt's dedup key repeats its error text (a bounce can quote the address)."""

WHOLE_KEYS = frozenset({
    "phones", "phone", "email", "address", "recipient", "borrower_name", "national_id",
    "contact", "person", "employer_provided", "note", "body"})
"""JSON keys whose string values (or lists of them) are replaced whole."""

PERSON_KEYS = frozenset({"phones", "phone", "email", "address", "contact"})
"""A JSON object with one of these and a `name` describes a person: its name is whole."""

SUMMARY_PREFIX = 60
"""Audit summaries quote a message's first characters (duecourse.store.ledger)."""


def _meaningful(value: str) -> bool:
    """Worth learning for replacement inside text: not a placeholder such as "-"."""
    return len(value.strip()) >= 2 and any(ch.isalnum() for ch in value)


def _edge(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


@dataclass
class Scrubber:
    """Pseudonymises one case's values; `learn` every identifying value first, then
    `apply`, so text anywhere in the case loses the values found anywhere else in it."""

    keys: PseudonymKeys
    known: dict[str, str] = field(default_factory=dict)  # value -> pseudonym
    _pattern: re.Pattern[str] | None = None

    def _token(self, value: str) -> str:
        token = self.keys.pseudonym(value)
        if _meaningful(value):
            self.known.setdefault(value, token)
            self._pattern = None
        return token

    def learn(self, how: str, value: Any) -> None:
        if how == WHOLE and isinstance(value, str) and not PSEUDONYM.fullmatch(value):
            token = self._token(value)
            if len(value) > SUMMARY_PREFIX:  # the quoted start stands for the whole
                self.known.setdefault(value[:SUMMARY_PREFIX], token)
        elif how in (JSON_DOC, JSON_TEXT):
            self._walk(_loads(value) if how == JSON_TEXT else value, learn=True)

    def apply(self, how: str, value: Any, limit: int | None = None) -> Any:
        """`value` pseudonymised; text that would outgrow `limit` is replaced whole."""
        if how == DROP:
            return None
        if value is None or value == "":
            return value
        if how == WHOLE:
            if not isinstance(value, str) or PSEUDONYM.fullmatch(value) or \
                    not any(ch.isalnum() for ch in value):
                return value
            return self._token(value)
        if how == TEXT:
            out = self._text(value)
            return self._token(value) if limit and len(out) > limit else out
        if how == JSON_TEXT:
            doc = _loads(value)
            if not isinstance(doc, dict | list):
                return self._text(value)
            return json.dumps(self._walk(doc, learn=False), ensure_ascii=False,
                              separators=(",", ":"))
        return self._walk(value, learn=False)

    def _text(self, value: str) -> str:
        if not isinstance(value, str) or not self.known:
            return value
        if self._pattern is None:
            parts = []
            for known in sorted(self.known, key=len, reverse=True):
                parts.append(("(?<![A-Za-z0-9])" if _edge(known[0]) else "") + re.escape(known)
                             + ("(?![A-Za-z0-9])" if _edge(known[-1]) else ""))
            self._pattern = re.compile("|".join(parts))
        return self._pattern.sub(lambda m: self.known[m.group(0)], value)

    def _walk(self, doc: Any, learn: bool, whole: bool = False) -> Any:
        one: Callable[[str], Any] = (
            (lambda s: self.learn(WHOLE, s)) if learn and whole else
            (lambda s: None) if learn else
            (lambda s: self.apply(WHOLE, s)) if whole else self._text)
        if isinstance(doc, str):
            return one(doc)
        if isinstance(doc, list):
            return [self._walk(item, learn, whole) for item in doc]
        if isinstance(doc, dict):
            person = "name" in doc and bool(PERSON_KEYS & doc.keys())
            return {k: self._walk(v, learn, whole or k in WHOLE_KEYS or (person and k == "name")
                                  or k == "attorney")
                    for k, v in doc.items()}
        return doc


def _loads(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value

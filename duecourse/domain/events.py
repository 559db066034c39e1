"""Outbound events: what platforms' webhooks are told, and how deliveries are signed.

Pure: the loan workflow maps its ledger entries to events deterministically, so each
event's id is `<case_id>:<entry key>` of the fact that caused it - the same on every retry
and replay, which is what lets a receiver deduplicate.

Every delivery is a POST of the event as JSON with these headers:

    Duecourse-Event-Id: <event_id>
    Duecourse-Event-Type: <type>
    Duecourse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

(plus `Duecourse-Attempt: <n>`, informational). A receiver recomputes the HMAC over the
raw body bytes with the webhook's secret, compares in constant time, and rejects timestamps
outside its tolerance (replays). More than one `v1=` may appear (reserved for secret
rotation); any match is valid. Delivery is at least once and not in order (a retried event
arrives after later ones): receivers deduplicate by event id and order by `occurred_at`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from duecourse.domain.entries import LedgerEntry, StageChanged

EventType = Literal[
    "loan.stage_changed",
    "loan.escalated_to_legal",
    "loan.paid",
    "loan.settled",
    "loan.written_off",
    "loan.cancelled",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
ALL_EVENTS = "*"
"""A webhook subscribed to `*` receives every event type, including ones added later."""

OUTCOME_EVENTS: dict[str, EventType] = {
    "PAID": "loan.paid",
    "SETTLED": "loan.settled",
    "WRITTEN_OFF": "loan.written_off",
    "CANCELLED": "loan.cancelled",
}

SIGNATURE_HEADER = "Duecourse-Signature"
EVENT_ID_HEADER = "Duecourse-Event-Id"
EVENT_TYPE_HEADER = "Duecourse-Event-Type"
DEFAULT_TOLERANCE = timedelta(minutes=5)


class EventData(BaseModel):
    """The change and the loan's position right after it."""

    model_config = ConfigDict(frozen=True)

    from_stage: str | None
    to_stage: str | None = Field(description="None when the loan closed")
    outcome: str | None = Field(default=None, description="set when the loan closed")
    reason: str
    days_past_due: int
    outstanding: Decimal = Field(description="balance after the change; a string in JSON")
    currency: str


class OutboundEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str = Field(description="stable across retries: `<case_id>:<ledger key>`")
    type: EventType
    loan_id: str
    workflow_id: str
    occurred_at: datetime
    data: EventData


@dataclass(frozen=True)
class RetrySchedule:
    """When a delivery that did not get through is tried again, and when it is given up
    (the outbox dispatcher's schedule; tests shorten it)."""

    first_delay: timedelta = timedelta(seconds=2)
    backoff: float = 2.0
    longest_delay: timedelta = timedelta(minutes=10)
    attempts: int = 20

    def delay_after(self, attempt: int) -> timedelta:
        """The wait after failed attempt number `attempt` (1-based)."""
        growth = self.backoff ** min(attempt - 1, 64)  # capped: no overflow
        seconds = self.first_delay.total_seconds() * growth
        return timedelta(seconds=min(seconds, self.longest_delay.total_seconds()))


DELIVERY_SCHEDULE = RetrySchedule()
"""About two hours of retries (2 s doubling to 10 min, 20 attempts) before giving up."""


def event_type_for(entry: StageChanged) -> EventType:
    """Closing -> the outcome's event; into LEGAL -> escalation; otherwise a stage change
    (including the hand-over into REMINDER, so platforms see collection begin)."""
    if entry.outcome:
        return OUTCOME_EVENTS.get(entry.outcome.upper(), "loan.stage_changed")
    if entry.to_stage == "LEGAL":
        return "loan.escalated_to_legal"
    return "loan.stage_changed"


def events_for(entries: Iterable[LedgerEntry], case_id: str, loan_id: str, workflow_id: str,
               outstanding: Decimal, currency: str) -> list[OutboundEvent]:
    """The events a batch of ledger entries announces (only stage changes do), each with
    the balance its stage change recorded (`outstanding` for entries made before they did)."""
    return [
        OutboundEvent(
            event_id=f"{case_id}:{entry.key}", type=event_type_for(entry), loan_id=loan_id,
            workflow_id=workflow_id, occurred_at=entry.occurred_at,
            data=EventData(from_stage=entry.from_stage, to_stage=entry.to_stage,
                           outcome=entry.outcome, reason=entry.reason,
                           days_past_due=entry.days_past_due,
                           outstanding=outstanding if entry.outstanding is None
                           else entry.outstanding,
                           currency=currency))
        for entry in entries if isinstance(entry, StageChanged)
    ]


def subscribed(events: Sequence[str], event_type: str) -> bool:
    """Whether a webhook's event list covers `event_type`."""
    return ALL_EVENTS in events or event_type in events


# ---------------------------------------------------------------------- signatures
def _raw(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, timestamp: int, body: str | bytes) -> str:
    """Hex HMAC-SHA256 over `<timestamp>.<body>`: binding the time into the MAC is what
    makes a captured delivery useless once outside the receiver's tolerance."""
    message = f"{timestamp}.".encode() + _raw(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: str | bytes) -> str:
    """The `Duecourse-Signature` value: `t=<unix seconds>,v1=<hex>`."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
"""Anything else in a header is malformed (a huge or non-ASCII value must never reach int()
or compare_digest, which would raise instead of refusing)."""


def parse_signature(header: str) -> tuple[int, list[str]] | None:
    """(timestamp, v1 signatures) from a header, or None when it is malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and _TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif name == "v1" and _HEX_SIGNATURE.fullmatch(value):
            signatures.append(value)
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify(secret: str, header: str, body: str | bytes, now: datetime,
           tolerance: timedelta = DEFAULT_TOLERANCE) -> bool:
    """True when `header` signs exactly `body` with `secret` and its timestamp lies within
    `tolerance` of `now` (either side: clocks drift). Constant-time comparison."""
    parsed = parse_signature(header)
    if parsed is None:
        return False
    timestamp, signatures = parsed
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, s) for s in signatures)

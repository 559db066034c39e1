"""Ledger entries: the facts a workflow asks the ledger to record.

Each carries a `key` unique within its workflow; the activity prefixes the workflow id to
form the idempotency key the database enforces, so a retried write is a no-op.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from duecourse.domain.actor import Actor
from duecourse.domain.work.queue import Task


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    occurred_at: datetime
    actor: Actor


class StageChanged(_Entry):
    """A move between stages; `to_stage` is None and `outcome` set when the loan closes."""

    kind: Literal["stage_changed"] = "stage_changed"
    from_stage: str | None
    to_stage: str | None
    outcome: str | None = None
    reason: str
    days_past_due: int
    outstanding: Decimal | None = Field(
        default=None, description="the balance as the stage changed: the event announcing "
                                  "it says this, whatever was paid before it was written")


class PaymentRecorded(_Entry):
    kind: Literal["payment"] = "payment"
    reference: str
    amount: Decimal
    currency: str
    paid_at: datetime
    applied: Decimal
    overpaid: Decimal
    outstanding_after: Decimal


class PromiseRecorded(_Entry):
    """A promise as made, then again each time its status changes."""

    kind: Literal["promise"] = "promise"
    promise_id: str
    amount: Decimal
    currency: str
    due_date: date
    status: str
    note: str = ""


class EventRecorded(_Entry):
    """Any other fact worth proving later (contact outcomes, legal decisions, skips)."""

    kind: Literal["event"] = "event"
    event: str
    details: dict[str, Any] = Field(default_factory=dict)


class ComplianceDecided(_Entry):
    """The engine's answer to one proposed contact: allowed, deferred or blocked."""

    kind: Literal["compliance_decision"] = "compliance_decision"
    step: str
    channel: str
    recipient: str
    recipient_kind: str
    purpose: str
    proposed_at: datetime
    verdict: str
    until: datetime | None = None
    valid_until: datetime | None = None  # allowed: the lawful window the send must keep to
    code: str = ""
    rule: str = ""
    detail: str = ""


class ContactLogged(_Entry):
    """A contact made by a person (an agent's call or visit) after the engine allowed it."""

    kind: Literal["contact_logged"] = "contact_logged"
    stage: str
    step: str
    channel: str
    recipient: str
    recipient_kind: str
    purpose: str
    person: str = ""  # who, when a guarantor or third party has several numbers
    at_workplace: bool = False  # at the place of employment (US 1006.6(b)(3))


class ContactDelivered(_Entry):
    """A message the provider accepted while the ledger could not record it: the workflow
    holds the fact in its history and writes it here, so it is never left unrecorded.
    `key` is the contact's own key (`contact:<visit>:<step>`)."""

    kind: Literal["contact_delivered"] = "contact_delivered"
    provider_message_id: str
    fenced_at: datetime
    sent_at: datetime


class TaskRecorded(_Entry):
    """A work-queue task as created, then again each time it changes (by `version`)."""

    kind: Literal["task"] = "task"
    task: Task


class AgreementRecorded(_Entry):
    """A plan or settlement as agreed, then again on each change of status."""

    kind: Literal["agreement"] = "agreement"
    agreement_id: str
    agreement_type: Literal["plan", "settlement"]
    status: str
    amount: Decimal
    currency: str
    terms: dict[str, Any] = Field(default_factory=dict)
    version: int


LedgerEntry = Annotated[
    StageChanged | PaymentRecorded | PromiseRecorded | EventRecorded | ComplianceDecided
    | ContactLogged | ContactDelivered | TaskRecorded | AgreementRecorded,
    Field(discriminator="kind"),
]

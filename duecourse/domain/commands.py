"""Activity contracts shared by workflows (callers) and activities (implementations).

Workflows import only these names and models, never the activity code, so a workflow
module stays light inside the sandbox and never pulls in a database driver.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from duecourse.domain.collection import CollectionState
from duecourse.domain.entries import LedgerEntry
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel, Policy

OPEN_LOAN = "open_loan"
SEND_MESSAGE = "send_message"
RECORD_ENTRIES = "record_entries"
ALERT_OPS = "alert_ops"
SCORE_LOAN = "score_loan"
REFER_TO_PARTNER = "refer_to_partner"
DELIVER_EVENT = "deliver_event"


class CollectionInput(BaseModel):
    """Start (or continue-as-new) payload of the collection workflow."""

    loan: LoanIntake
    policy: Policy
    state: CollectionState | None = Field(
        default=None, description="carried over by continue-as-new; None for a new loan"
    )
    history_limit: int = Field(default=10_000, ge=100,
                               description="continue-as-new once history grows past this")


class CollectionResult(BaseModel):
    loan_id: str
    outcome: str
    reason: str
    outstanding: Money
    total_paid: Money
    closed_at: datetime


class OpenLoan(BaseModel):
    case_id: str
    workflow_id: str
    loan: LoanIntake
    policy: str
    opened_at: datetime
    compliance: dict[str, Any] = Field(
        default_factory=dict, description="the effective rule pack and policy contact "
                                          "hours, kept so the audit re-checks this case "
                                          "against the rules it ran under")


class SendMessage(BaseModel):
    """One borrower contact; `idempotency_key` makes a retried send a no-op."""

    idempotency_key: str
    case_id: str
    workflow_id: str
    loan_id: str
    stage: str
    step: str
    channel: Channel
    template: str
    language: str
    recipient: str
    recipient_kind: str = "debtor"
    purpose: str = "collection"
    jurisdiction: str
    scheduled_for: datetime
    context: dict[str, str]


class MessageSent(BaseModel):
    message_id: str
    status: str
    duplicate: bool = False


class RecordEntries(BaseModel):
    """Entries are keyed `<case_id>:<entry.key>` in the ledger."""

    case_id: str
    workflow_id: str
    loan_id: str
    entries: list[LedgerEntry]


class OpsAlert(BaseModel):
    idempotency_key: str
    case_id: str
    workflow_id: str
    loan_id: str
    subject: str
    body: str
    raised_at: datetime


def money_text(amount: Decimal, currency: str) -> str:
    """How amounts appear in messages: `1,050.50 CNY`."""
    return str(Money(amount=amount, currency=currency))

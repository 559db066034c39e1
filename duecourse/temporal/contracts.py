"""Activity contracts shared by workflows (callers) and activities (implementations).

Workflows import only these names and models, never the activity code, so a workflow
module stays light inside the sandbox and never pulls in a database driver.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from duecourse.domain.case.state import CollectionState
from duecourse.domain.entries import ComplianceDecided, LedgerEntry
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel, Policy, Segment
from duecourse.domain.rules import RulesSnapshot
from duecourse.domain.scoring import ScoreInput, ScoreResult

OPEN_LOAN = "open_loan"
SEND_MESSAGE = "send_message"
SETTLE_SEND = "settle_send"  # was a withdrawn send accepted by its channel after all?
RECORD_ENTRIES = "record_entries"
ALERT_OPS = "alert_ops"
SCORE_LOAN = "score_loan"
REFER_TO_PARTNER = "refer_to_partner"
SEND_CLEARANCE = "send_clearance"  # the collection workflow's query a send asks last
AWAIT_WORKFLOW = "await_workflow"


class StrategyChoice(BaseModel):
    """The experiment arm a loan was assigned at hand-over (duecourse.lab.experiments)."""

    experiment: str
    strategy: str  # the arm's name; its policy is the one the loan runs on


class CollectionInput(BaseModel):
    """Start (or continue-as-new) payload of the collection workflow."""

    loan: LoanIntake
    policy: Policy
    state: CollectionState | None = Field(
        default=None, description="carried over by continue-as-new; None for a new loan"
    )
    history_limit: int = Field(default=10_000, ge=100,
                               description="continue-as-new once history grows past this")
    strategy: StrategyChoice | None = Field(
        default=None, description="the experiment arm, recorded on the case; None: none")


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
        default_factory=dict, description="the policy contact hours (and the pack the "
                                          "activity snapshots), kept so the audit "
                                          "re-checks this case against the rules it ran "
                                          "under")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="the policy's rule-pack overrides, applied to the "
                                          "pack the activity snapshots")
    entries: list[LedgerEntry] = Field(
        default_factory=list, description="the hand-over's own entries (entering the first "
                                          "stage), written once the case is open")
    outstanding: Money | None = Field(default=None, description="the balance the entries' "
                                      "events announce")
    score: ScoreInput | None = Field(default=None, description="facts for the first score "
                                     "(None: not scored at hand-over)")
    segment: Segment | None = None  # the segment before that score
    score_event: int = Field(default=0, description="the number the case reserved for the "
                             "score's fact (`scoring_entries`)")
    scored_at: datetime | None = None
    strategy: StrategyChoice | None = None  # the experiment arm the case records


class HandedOver(BaseModel):
    """What `open_loan` answers: the case, its rules, and the first score (None when the
    scorer failed: `score_failure` says why, the segment is kept)."""

    created: bool
    rules: RulesSnapshot
    score: ScoreResult | None = None
    score_failure: str = ""
    consents: dict[str, Literal["given", "withdrawn"]] = Field(
        default_factory=dict, description="the borrower's standing in the consent ledger "
        "per channel (an earlier loan's STOP, a consent given before): the loan starts "
        "from it")


class SendMessage(BaseModel):
    """One borrower contact, as decided: `idempotency_key` makes a retried send a no-op,
    `decision` (the engine's Allowed) is recorded with the claim before the channel is
    called, and the message never goes out after `not_after` (the end of the lawful
    window it was decided for) nor after a stop fact (the workflow's `send_clearance`)."""

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
    not_after: datetime
    decision: ComplianceDecided
    max_channel_attempts: int = Field(default=20, ge=1,
                                      description="calls to the channel before giving up "
                                                  "(a failed call keeps its one-minute lease: "
                                                  "about 20 minutes of outage); ledger and "
                                                  "fence errors do not count")
    context: dict[str, str]
    time_barred: bool = False  # no template that mentions legal action may render
    link_days: int | None = None  # the policy's page link lifetime (None: the setting's)


class MessageSent(BaseModel):
    message_id: str
    status: str
    duplicate: bool = False
    fenced_at: datetime | None = Field(default=None, description="when the last check "
                                       "before the channel call passed")
    sent_at: datetime | None = Field(default=None, description="when the channel accepted it")
    via: str | None = Field(default=None, description="the adapter (and provider) that took "
                            "it, e.g. outbox, smtp:mail.example")
    recorded: bool = Field(default=True, description="False: accepted by the channel while "
                           "the ledger was down; the workflow records it (ContactDelivered)")


class SendClearance(BaseModel):
    """The send's last question to its workflow, just before the channel call: may this
    contact still go out now? Answered by the `send_clearance` query ('' = yes)."""

    idempotency_key: str
    channel: Channel
    recipient: str
    purpose: str
    at: datetime


class OpsAlert(BaseModel):
    idempotency_key: str
    case_id: str
    workflow_id: str
    loan_id: str
    subject: str
    body: str
    raised_at: datetime


class RecordEntries(BaseModel):
    """Entries are keyed `<case_id>:<entry.key>` in the ledger."""

    case_id: str
    workflow_id: str
    loan_id: str
    entries: list[LedgerEntry]
    outstanding: Money | None = Field(
        default=None, description="the balance as the entries were made: the outbound "
                                  "events they announce carry it (None: runs from before "
                                  "the ledger announced events)")
    alerts: list[OpsAlert] = Field(
        default_factory=list, description="ops alerts raised with the entries, written after "
                                          "them in the same activity")


def money_text(amount: Decimal, currency: str) -> str:
    """How amounts appear in messages: `1,050.50 CNY`."""
    return str(Money(amount=amount, currency=currency))


class WorkflowEnding(BaseModel):
    """How a watched workflow ended (`await_workflow`)."""

    completed: bool
    why: str = ""

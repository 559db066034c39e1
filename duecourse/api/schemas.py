"""Request and response bodies of the REST API (the actor always comes from the key)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PlainValidator,
    StringConstraints,
)
from pydantic_core import PydanticKnownError

from duecourse.api.amounts import Amount
from duecourse.domain.case.commands import ContactResult, Note, Recording
from duecourse.domain.compliance import HoldKind, InconvenientTime, RecipientKind
from duecourse.domain.compliance.requests import Attorney
from duecourse.domain.ids import AgentId, PlatformId, PolicyName, ProductName, Reference
from duecourse.domain.legal.case import CaseEventKind, CloseOutcome
from duecourse.domain.loan import (
    Jurisdiction,
    LanguageTag,
    LoanIntake,
    PersonName,
    PhoneNumber,
    PostalAddress,
    TimeZoneName,
)
from duecourse.domain.money import CurrencyCode
from duecourse.domain.policy import Channel
from duecourse.temporal.portfolio_query import ListedLoan

Reason = Annotated[Note, StringConstraints(min_length=1)]
"""Why, in words: a note that may not be empty."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------- loans
class FlatLoan(BaseModel):
    """One loan as a row of the CSV hand-over file (`duecourse start loans.csv`), in JSON:
    the borrower's fields inline, and `days_past_due` instead of `due_date` if you like.
    Documentation only: both shapes are read by the same intake code as hand-over files."""

    model_config = ConfigDict(extra="forbid")

    loan_id: PlatformId
    borrower_id: PlatformId
    borrower_name: PersonName
    phones: list[PhoneNumber] | str = Field(
        default_factory=list, description="E.164 numbers; in one string, separated by ';'")
    email: EmailStr | None = None
    address: PostalAddress | None = None
    timezone: TimeZoneName
    other_timezones: list[TimeZoneName] | str = Field(
        default_factory=list, description="in one string, separated by ';'")
    language: LanguageTag = "en"
    jurisdiction: Jurisdiction
    currency: CurrencyCode
    principal: Decimal = Field(gt=0)
    outstanding: Decimal = Field(gt=0)
    due_date: date | None = Field(default=None, description="or days_past_due, not both")
    days_past_due: int | None = Field(default=None, ge=1, description="days overdue today, "
                                      "in the borrower's time zone; or due_date")
    last_payment_date: date | None = None
    product: ProductName = "instalment"
    policy: PolicyName = "standard"


def _record(value: Any) -> Any:
    return value  # intake reads it, with a verdict for anything


def _loan_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PydanticKnownError("model_attributes_type")
    return value


LoanRecord = Annotated[Any, PlainValidator(_record,
                                           json_schema_input_type=LoanIntake | FlatLoan)]
"""One loan of a batch, nested (`LoanIntake`) or flat (`FlatLoan`): anything is taken, and
intake gives each its own verdict."""
LoanIn = Annotated[dict[str, Any], PlainValidator(
    _loan_object, json_schema_input_type=LoanIntake | FlatLoan)]
"""The loan of `POST /v1/loans`, nested (`LoanIntake`) or flat (`FlatLoan`)."""


class LoanStarted(BaseModel):
    loan_id: str
    workflow_id: str
    run_id: str | None
    status: Literal["started", "already_running"]
    policy: str


class BatchRequest(_In):
    loans: list[LoanRecord] = Field(min_length=1, max_length=1000)


class BatchRow(BaseModel):
    index: int
    loan_id: str | None
    status: Literal["started", "already_running", "rejected"]
    workflow_id: str | None = None
    reason: str | None = None


class BatchResult(BaseModel):
    started: int
    already_running: int
    rejected: int
    results: list[BatchRow]


class LoanSummary(ListedLoan):
    outstanding: str | None = Field(description="as indexed for search (rounded to cents); "
                                                "the exact amount is in GET /v1/loans/{id}")
    jurisdiction: str | None
    segment: str | None
    assigned_agent: str | None
    started_at: datetime | None


class LoanPage(BaseModel):
    loans: list[LoanSummary]
    next_page_token: str | None


class TimelineEntry(BaseModel):
    occurred_at: datetime
    kind: str
    summary: str
    actor: str
    data: dict[str, Any]


class TimelinePage(BaseModel):
    loan_id: str
    items: list[TimelineEntry]
    limit: int
    offset: int
    next_offset: int | None


class Accepted(BaseModel):
    status: Literal["accepted", "duplicate"]
    detail: str


# ------------------------------------------------------------------------- actions
class PaymentIn(_In):
    reference: Reference
    amount: Amount
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")] | None = None
    paid_at: AwareDatetime | None = None


class PromiseIn(_In):
    amount: Amount
    due_date: date
    note: Note = ""


class InstalmentIn(_In):
    due_date: date
    amount: Amount


class PlanIn(_In):
    instalments: list[InstalmentIn] = Field(min_length=1, max_length=60)
    note: Note = ""


class SettlementIn(_In):
    amount: Amount
    pay_by: date
    note: Note = ""


class DecisionIn(_In):
    approve: bool
    reason: Reason


class DisputeIn(_In):
    action: Literal["opened", "verified"]
    reason: Reason
    written: bool = Field(default=False, description="the dispute was made in writing (US "
                          "law stops collection only for a written dispute within the "
                          "validation period, 12 CFR 1006.38(d)(2))")


class HoldIn(_In):
    """Hardship: for `days`. Breathing space: set by law. Mental health crisis: until its
    treatment ends (GB: then 30 more days). Mental capacity: until ended, no days."""

    action: Literal["start", "end"]
    kind: HoldKind
    days: int | None = Field(default=None, ge=1, le=366)
    reference: Annotated[str, StringConstraints(max_length=128)] = ""
    note: Note = ""


class PreferencesIn(_In):
    opt_out: list[Channel] = Field(default_factory=list, max_length=5)
    opt_in: list[Channel] = Field(default_factory=list, max_length=5)
    inconvenient_times: list[InconvenientTime] | None = Field(default=None, max_length=14)
    cease_communication: bool = False
    attorney: Attorney | None = None
    esign_consent: bool = Field(default=False, description="the consumer consented to "
                                "electronic notices (E-SIGN, 12 CFR 1006.42)")
    workplace_contact_prohibited: bool = Field(
        default=False, description="the employer prohibits contact at the place of "
        "employment (12 CFR 1006.6(b)(3))")
    employer_provided: list[Annotated[str, StringConstraints(
        strip_whitespace=True, min_length=1, max_length=320)]] = Field(
        default_factory=list, max_length=10, description="email addresses the employer "
        "provided: never emailed (12 CFR 1006.22(f)(3))")
    note: Note = ""


class OutcomeIn(_In):
    channel: Channel
    result: ContactResult
    note: Note = ""
    address: Annotated[str, StringConstraints(max_length=320)] | None = Field(
        default=None, description="the number or address used (default: the borrower's)")
    recipient_kind: RecipientKind = Field(
        default=RecipientKind.DEBTOR, description="who it was with: a guarantor's or third "
        "party's calls and conversations count for them")
    person: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="who, when a guarantor or third party has several numbers")
    recontact_invited: bool = Field(
        default=False, description="the third party asked to be contacted again, or their "
        "earlier answer proved wrong (15 USC 1692b(3))")
    collectors: int = Field(default=1, ge=1, le=10,
                            description="people on a home visit (CN: at least 2)")
    recording: Recording | None = Field(
        default=None, description="a call's recording: an https URL or the dialer's id")


class CaseEventIn(_In):
    kind: CaseEventKind
    occurred_on: date
    details: Note = ""
    amount: Amount | None = None
    outcome: CloseOutcome | None = None


class AssignmentIn(_In):
    agent_id: AgentId
    note: Note = ""


class CancelIn(_In):
    reason: Reason


class TaskCompleteIn(_In):
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    note: Note = ""


class TaskView(BaseModel):
    task_id: str
    loan_id: str
    kind: str
    subject: str
    assignee: str
    status: str
    created_at: datetime
    due_at: datetime
    escalated_at: datetime | None
    outcome: str
    completed_by: str | None
    completed_at: datetime | None


class TaskList(BaseModel):
    tasks: list[TaskView]


class AmountByCurrency(BaseModel):
    currency: str
    amount: str


class PortfolioSummary(BaseModel):
    open_by_stage: dict[str, int]
    closed_by_outcome: dict[str, int]
    outstanding: list[AmountByCurrency]
    recovered: list[AmountByCurrency]
    as_of: datetime

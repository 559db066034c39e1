"""The legal case: demand, cure period, supervised referral, then the case itself."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from duecourse.domain.actor import Actor
from duecourse.domain.case.commands import Note
from duecourse.domain.money import Money


class CaseEventKind(StrEnum):
    FILED = "filed"
    HEARING = "hearing"
    JUDGMENT = "judgment"
    ENFORCEMENT = "enforcement"
    CLOSED = "closed"


ORDER = {CaseEventKind.FILED: 0, CaseEventKind.HEARING: 1, CaseEventKind.JUDGMENT: 2,
         CaseEventKind.ENFORCEMENT: 3, CaseEventKind.CLOSED: 4}
"""Events may repeat (several hearings) but never go back before an earlier kind."""

CloseOutcome = Literal["paid", "settled", "written_off", "withdrawn"]


class CaseEvent(BaseModel):
    """What the legal team reports about the case."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: CaseEventKind
    occurred_on: date
    actor: Actor
    details: Note = ""
    amount: Money | None = Field(default=None, description="judgment or recovered amount")
    outcome: CloseOutcome | None = Field(default=None, description="required when closed")

    @model_validator(mode="after")
    def _closing(self) -> CaseEvent:
        if (self.kind is CaseEventKind.CLOSED) != (self.outcome is not None):
            raise ValueError("an outcome is given exactly when the case is closed")
        return self


class Referral(BaseModel):
    partner: str
    reference: str
    referred_at: datetime


class LegalCase(BaseModel):
    """The child workflow's record, mirrored into the parent's status."""

    case_ref: str
    workflow_id: str
    phase: str = "DEMAND_PENDING"
    phase_at: datetime
    escalations: int = 0
    referral: Referral | None = None
    events: list[CaseEvent] = Field(default_factory=list)
    outcome: str | None = None


class LegalCaseInput(BaseModel):
    case: LegalCase
    parent_workflow_id: str
    collection_case_id: str  # the ledger's case (first run id of the loan's workflow)
    loan_id: str
    cure_period: timedelta
    approval_timeout: timedelta
    partner: str


class LegalProgress(BaseModel):
    """Child -> parent: what happened, with the case as it now stands."""

    event: Literal["send_demand", "approval_requested", "approval_overdue", "referred",
                   "referral_failed", "closed"]
    case: LegalCase
    detail: str = ""


class ManualReferral(BaseModel):
    """A person referred the case by hand (the partner could not be reached
    automatically), or asks the case to try the partner again."""

    retry: bool = False
    reference: str = ""


class DemandResult(BaseModel):
    delivered: bool
    detail: str


class ReferralRequest(BaseModel):
    idempotency_key: str
    case_id: str
    loan_id: str
    case_ref: str
    partner: str
    summary: str
    requested_at: datetime


class ReferralReceipt(BaseModel):
    reference: str

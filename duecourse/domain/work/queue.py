"""The agent work queue: tasks a loan's workflow creates for people, with SLAs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from duecourse.domain.actor import Actor
from duecourse.domain.case.commands import Note


class TaskKind(StrEnum):
    CALL_BORROWER = "call_borrower"
    FIELD_VISIT = "field_visit"
    REVIEW_HARDSHIP = "review_hardship"
    APPROVE_SETTLEMENT = "approve_settlement"
    APPROVE_LEGAL = "approve_legal"
    SEND_NOTICE = "send_notice"  # a notice the law requires could not be sent automatically
    REFER_CASE = "refer_case"  # the legal partner could not be reached automatically
    REVIEW_MORATORIUM = "review_moratorium"  # a moratorium we must honour but may question
    REVIEW_VIOLATION = "review_violation"  # an agent reported a contact that broke a rule


OUTCOMES: dict[TaskKind, tuple[str, ...]] = {
    TaskKind.CALL_BORROWER: ("reached", "no_answer", "left_message", "wrong_number",
                             "refused"),
    TaskKind.FIELD_VISIT: ("met", "not_home", "refused"),
    TaskKind.REVIEW_HARDSHIP: ("confirmed", "rejected"),
    TaskKind.APPROVE_SETTLEMENT: ("approved", "rejected"),
    TaskKind.APPROVE_LEGAL: ("approved", "rejected"),
    TaskKind.SEND_NOTICE: ("sent", "retry"),  # sent by hand, or details fixed: try again
    TaskKind.REFER_CASE: ("referred", "retry"),  # referred by hand (note: the reference)
    # honoured as registered, or a review asked of the debt adviser (DRS reg 17): the
    # moratorium stays either way until the adviser ends it
    TaskKind.REVIEW_MORATORIUM: ("noted", "review_requested"),
    # a breach the agent reported: confirmed (and dealt with, e.g. coaching), or dismissed
    # as reported wrongly - the ledger keeps the contact either way
    TaskKind.REVIEW_VIOLATION: ("confirmed", "dismissed"),
}
"""The outcomes a completion may report, per kind of task."""

SUPERVISOR_ONLY = {TaskKind.APPROVE_SETTLEMENT, TaskKind.APPROVE_LEGAL,
                   TaskKind.REVIEW_HARDSHIP, TaskKind.REFER_CASE, TaskKind.REVIEW_MORATORIUM,
                   TaskKind.REVIEW_VIOLATION}


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class Task(BaseModel):
    task_id: str
    kind: TaskKind
    subject: str  # what it is about: a step, a settlement id, the legal referral
    assignee: str
    created_at: datetime
    due_at: datetime
    status: TaskStatus = TaskStatus.OPEN
    escalated_at: datetime | None = None
    outcome: str = ""
    completed_by: Actor | None = None
    completed_at: datetime | None = None
    note: str = ""
    version: int = 1


class TaskCompletion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    task_id: str = Field(min_length=1, max_length=128)
    outcome: str = Field(min_length=1, max_length=32)
    actor: Actor
    note: Note = ""


class TaskResult(BaseModel):
    task_id: str
    kind: str
    outcome: str
    stage: str

"""Completing a work-queue task: the outcome an agent reports drives the workflow."""

from __future__ import annotations

from datetime import datetime

from duecourse.domain.actor import ActorKind
from duecourse.domain.agreements.deals import decide_settlement, settlement_decision_problem
from duecourse.domain.agreements.terms import SettlementDecision
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult, LegalDecision
from duecourse.domain.compliance import HoldKind
from duecourse.domain.compliance.requests import HoldRequest
from duecourse.domain.contact.notices import notice_done
from duecourse.domain.contact.protections import change_hold
from duecourse.domain.entries import LedgerEntry
from duecourse.domain.policy import Channel
from duecourse.domain.work.queue import OUTCOMES, SUPERVISOR_ONLY, TaskCompletion, TaskKind
from duecourse.domain.work.tasks import find, resolve

_CONTACT_RESULTS = {
    "reached": ContactResult.REACHED, "met": ContactResult.REACHED,
    "no_answer": ContactResult.NO_ANSWER, "not_home": ContactResult.NO_ANSWER,
    "left_message": ContactResult.LEFT_MESSAGE, "wrong_number": ContactResult.WRONG_NUMBER,
    "refused": ContactResult.REFUSED,
}


def task_problem(c: Collection, done: TaskCompletion,
                 now: datetime | None = None) -> str | None:
    task = find(c, done.task_id)
    if task is None:
        return f"no task {done.task_id} on loan {c.loan.loan_id}"
    if task.status.value != "open":
        return f"task {done.task_id} is already {task.status.value}"
    allowed = OUTCOMES[task.kind]
    if done.outcome not in allowed:
        return (f"outcome {done.outcome!r} does not fit a {task.kind.value} task; use one "
                f"of {', '.join(allowed)}")
    if task.kind in SUPERVISOR_ONLY and done.actor.kind is not ActorKind.SUPERVISOR:
        return f"only a supervisor may complete a {task.kind.value} task"
    approve = done.outcome == "approved"
    if task.kind is TaskKind.APPROVE_SETTLEMENT:
        return settlement_decision_problem(c, SettlementDecision(
            approve=approve, actor=done.actor, reason=done.note or done.outcome), now)
    if task.kind is TaskKind.APPROVE_LEGAL:
        return c.legal_decision_problem(LegalDecision(
            approve=approve, actor=done.actor, reason=done.note or done.outcome))
    if task.kind is TaskKind.REFER_CASE and done.outcome == "referred" and not done.note:
        return "give the legal partner's reference for the case in the note"
    return None


def complete_task(c: Collection, done: TaskCompletion, now: datetime) -> list[LedgerEntry]:
    """Close the task and apply what its outcome means for the loan."""
    if problem := task_problem(c, done, now):
        raise ValueError(problem)
    task = find(c, done.task_id)
    assert task is not None
    entries = resolve(c, task, done.outcome, done.actor, now, done.note)
    reason = done.note or done.outcome
    if task.kind in (TaskKind.CALL_BORROWER, TaskKind.FIELD_VISIT):
        channel = Channel.VOICE if task.kind is TaskKind.CALL_BORROWER else Channel.VISIT
        entries += c.record_contact_outcome(ContactOutcomeReport(
            channel=channel, result=_CONTACT_RESULTS[done.outcome], actor=done.actor,
            note=done.note), now)
    elif task.kind is TaskKind.REVIEW_HARDSHIP and done.outcome == "rejected" and any(
            h.kind is HoldKind.HARDSHIP and h.covers(now)
            for h in c.state.contacting.standing.holds):
        entries += change_hold(c, HoldRequest(action="end", kind=HoldKind.HARDSHIP,
                                              actor=done.actor, note=reason), now)
    elif task.kind is TaskKind.APPROVE_SETTLEMENT:
        entries += decide_settlement(c, SettlementDecision(
            approve=done.outcome == "approved", actor=done.actor, reason=reason), now)
    elif task.kind is TaskKind.APPROVE_LEGAL:
        entries += c.decide_legal(LegalDecision(approve=done.outcome == "approved",
                                                actor=done.actor, reason=reason), now)
    elif task.kind is TaskKind.SEND_NOTICE:
        entries += notice_done(c, task, done.outcome, done.actor, now)
    return entries

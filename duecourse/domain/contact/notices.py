"""Notices the law requires (US validation notice, UK forbearance offer) that could not be
sent automatically: a person takes over instead of the engine retrying until write-off.

The step is marked done with a `send_notice` task for a person; the loan does not ask
again until that person reports the notice sent by other means (it then counts as sent)
or asks for another try (contact details fixed, opt-out lifted).
"""

from __future__ import annotations

from datetime import datetime

from duecourse.domain.actor import Actor
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.compliance import Purpose
from duecourse.domain.entries import ContactLogged, LedgerEntry
from duecourse.domain.policy import Channel, ContactStep
from duecourse.domain.work.queue import Task, TaskKind
from duecourse.domain.work.tasks import open_task

VALIDATION_STEP = ContactStep(name="validation-notice", channel=Channel.LETTER,
                              template="validation_notice",
                              templates={Channel.EMAIL: "validation_notice"})
FORBEARANCE_STEP = ContactStep(name="forbearance-offer", channel=Channel.EMAIL,
                               template="forbearance_offer",
                               templates={Channel.LETTER: "forbearance_offer"})
REQUIRED = {VALIDATION_STEP.name: (VALIDATION_STEP, Purpose.VALIDATION_NOTICE),
            FORBEARANCE_STEP.name: (FORBEARANCE_STEP, Purpose.FORBEARANCE_OFFER)}
"""The notices the engine sends by itself when a pack requires them, by step name."""


def waiting_for_person(c: Collection, step: str) -> bool:
    """A person has the notice `step` in hand (an open send_notice task)."""
    return any(t.kind is TaskKind.SEND_NOTICE and t.subject == step
               for t in c.state.work.open_tasks)


def notice_not_sent(c: Collection, step: ContactStep, detail: str,
                    now: datetime) -> tuple[Task, list[LedgerEntry]]:
    """Hand the notice to a person, once; the step is done until they act."""
    task, entries = open_task(c, TaskKind.SEND_NOTICE, step.name, now,
                              note=f"{step.template} could not be sent: {detail}")
    entries += c.record_step(step.name, "task", now, f"{task.task_id}: {detail}")
    entries.append(c.record_event("required_notice_not_sent", now, step=step.name, detail=detail,
                                  task=task.task_id))
    return task, entries


def notice_done(c: Collection, task: Task, outcome: str, actor: Actor,
                now: datetime) -> list[LedgerEntry]:
    """`sent`: the person sent it another way - it counts as sent now. `retry`: plan the
    notice again (details were fixed or an opt-out lifted)."""
    s = c.state
    if outcome == "retry" or task.subject not in REQUIRED:
        contacting = s.contacting
        contacting.steps = [r for r in contacting.steps
                            if not (r.step == task.subject and r.status == "task")]
        return [c.record_event("required_notice_retry", now, actor, step=task.subject)]
    step, purpose = REQUIRED[task.subject]
    c.contact_made(step.channel, "-", now, purpose)
    s.event_seq += 1
    return [ContactLogged(key=f"notice-by-hand:{s.event_seq}", occurred_at=now, actor=actor,
                          stage=s.stage, step=task.subject, channel=step.channel,
                          recipient="-", recipient_kind="debtor", purpose=purpose)]

"""Changes to a borrower's protections and contact wishes, applied to a collection.

Each returns the ledger entries that prove it; together with contact attempts they are
all the independent audit needs to re-check every contact later. Changes that freeze or
unfreeze collection (disputes, holds, bankruptcy, death) go through `sync_pause`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from duecourse.domain.actor import SYSTEM
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.compliance import Hold, HoldKind
from duecourse.domain.compliance.requests import (
    DisputeChange,
    HoldRequest,
    LifeEvent,
    PreferenceChange,
)
from duecourse.domain.entries import LedgerEntry
from duecourse.domain.policy import Channel
from duecourse.domain.work.queue import TaskKind
from duecourse.domain.work.tasks import open_task


def change_preferences(c: Collection, req: PreferenceChange,
                       now: datetime) -> list[LedgerEntry]:
    st = c.state.contacting.standing
    entries: list[LedgerEntry] = []
    for channel in req.opt_out:
        st.opted_out.setdefault(channel, now)
        entries.append(c.record_event("opted_out", now, req.actor, channel=channel, note=req.note))
    for channel in req.opt_in:
        if st.opted_out.pop(channel, None) is not None:
            entries.append(c.record_event("opted_in", now, req.actor, channel=channel,
                                          note=req.note))
    if req.inconvenient_times is not None:
        st.inconvenient = list(req.inconvenient_times)
        entries.append(c.record_event("inconvenient_times", now, req.actor,
                                      windows=[w.model_dump(mode="json") for w in st.inconvenient],
                                      note=req.note))
    if req.cease_communication and st.cease_communication_at is None:
        st.cease_communication_at = now
        entries.append(c.record_event("cease_communication", now, req.actor, note=req.note))
    if req.attorney is not None and st.attorney_at is None:
        st.attorney_at = now
        entries.append(c.record_event("attorney_represents", now, req.actor,
                                      attorney=req.attorney.name, contact=req.attorney.contact,
                                      note=req.note))
    if req.esign_consent and st.esign_consent_at is None:
        st.esign_consent_at = now
        entries.append(c.record_event("esign_consent", now, req.actor, note=req.note))
    if req.sms_consent == "given" and st.sms_consent_at is None:
        st.sms_consent_at = now
        entries.append(c.record_event("sms_consent", now, req.actor, note=req.note))
    elif req.sms_consent == "withdrawn" and st.sms_consent_at is not None:
        st.sms_consent_at = None
        entries.append(c.record_event("sms_consent_withdrawn", now, req.actor, note=req.note))
    if req.workplace_contact_prohibited and st.workplace_contact_prohibited_at is None:
        st.workplace_contact_prohibited_at = now
        entries.append(c.record_event("workplace_contact_prohibited", now, req.actor,
                                      note=req.note))
    for address in req.employer_provided:
        if address not in st.employer_provided:
            st.employer_provided.append(address)
            entries.append(c.record_event("employer_provided_address", now, req.actor,
                                          address=address, note=req.note))
    return entries


def standing_at_hand_over(consents: Mapping[str, str]) -> PreferenceChange | None:
    """The borrower's consent-ledger standing (channel -> "given"/"withdrawn", from the
    hand-over) as the change a new loan starts with: a channel the borrower withdrew from
    on an earlier loan stays opted out, an SMS consent given before counts here too."""
    channels = {ch.value: ch for ch in Channel}
    opt_out = [channels[ch] for ch, action in sorted(consents.items())
               if action == "withdrawn" and ch in channels]
    sms = consents.get(Channel.SMS.value)
    if not opt_out and sms not in ("given", "withdrawn"):
        return None
    return PreferenceChange(opt_out=opt_out, sms_consent=sms,  # type: ignore[arg-type]
                            actor=SYSTEM, note="the borrower's standing in the consent "
                            "ledger at hand-over")


def change_dispute(c: Collection, req: DisputeChange, now: datetime) -> list[LedgerEntry]:
    st = c.state.contacting.standing
    if req.action == "opened":
        if st.dispute_open:
            return [c.record_event("dispute_already_open", now, req.actor, reason=req.reason)]
        st.dispute_opened_at, st.dispute_written = now, req.written
        entries = [c.record_event("dispute_opened", now, req.actor, reason=req.reason,
                                  written=req.written)]
    else:
        if not st.dispute_open:
            return [c.record_event("dispute_verification_ignored", now, req.actor,
                                   reason=req.reason, why="no dispute is open")]
        st.dispute_verified_at = now
        entries = [c.record_event("dispute_verified", now, req.actor, reason=req.reason)]
    return entries + c.sync_pause(now, req.actor)


def _crisis_tail(c: Collection, kind: HoldKind) -> timedelta | None:
    """How long a mental health crisis moratorium runs on after its treatment ends
    (GB: 30 days, Debt Respite Scheme regs 28-32); None where the hold simply ends."""
    return c.pack.crisis_moratorium_after_treatment \
        if kind is HoldKind.MENTAL_HEALTH_CRISIS else None


def _earlier_breathing_space(c: Collection, now: datetime) -> Hold | None:
    """The latest breathing space that started within the pack's once-per window."""
    window = c.pack.breathing_space_once_per
    recent = [h for h in c.state.contacting.standing.holds if h.kind is HoldKind.BREATHING_SPACE
              and h.start > now - window]
    return recent[-1] if recent else None


def hold_problem(c: Collection, req: HoldRequest, now: datetime) -> str | None:
    """Why a hold request must be refused, or None.

    A registered moratorium is never refused for the debtor's eligibility (a second
    breathing space within 12 months is the debt adviser's check, not ours: we comply,
    and may ask for a review); only requests that cannot mean anything are."""
    st, pack = c.state.contacting.standing, c.pack
    if c.state.is_closed:
        return f"the loan is closed ({c.state.outcome})"
    active = next((h for h in st.holds if h.kind is req.kind and h.covers(now)), None)
    label = req.kind.value.replace("_", " ")
    if req.action == "end":
        if active is None:
            return f"no {label} hold is active"
        tail = _crisis_tail(c, req.kind)
        if tail is not None and active.end is not None:
            return (f"the crisis treatment has already ended; the moratorium runs on until "
                    f"{active.end.isoformat()} ({tail.days} days after the treatment) and "
                    "ends by itself")
        return None
    if active is not None:
        return f"a {label} hold is already active"
    if req.kind is HoldKind.BREATHING_SPACE and pack.breathing_space is None:
        return f"breathing space does not apply in {c.loan.jurisdiction}"
    if req.kind is HoldKind.HARDSHIP and req.days is None:
        return "a hardship hold needs its length in days"
    if (tail := _crisis_tail(c, req.kind)) is not None and req.days is not None:
        return (f"a mental health crisis moratorium lasts while the crisis treatment does, "
                f"plus {tail.days} days after it ends; it takes no days")
    return None


def change_hold(c: Collection, req: HoldRequest, now: datetime) -> list[LedgerEntry]:
    problem = hold_problem(c, req, now)
    if problem:
        raise ValueError(problem)
    st = c.state.contacting.standing
    if req.action == "end":
        tail = _crisis_tail(c, req.kind)
        end = now + tail if tail is not None else now
        for i, hold in enumerate(st.holds):
            if hold.kind is req.kind and hold.covers(now):
                st.holds[i] = hold.model_copy(update={"end": end})
        if tail is not None:  # the treatment ended now; the moratorium runs on
            entries = [c.record_event("crisis_treatment_ended", now, req.actor, kind=req.kind,
                                      end=end, days_after_treatment=tail.days, note=req.note)]
        else:
            entries = [c.record_event("hold_ended", now, req.actor, kind=req.kind, note=req.note)]
        return entries + c.sync_pause(now, req.actor)
    earlier = _earlier_breathing_space(c, now) \
        if req.kind is HoldKind.BREATHING_SPACE else None
    length = c.pack.breathing_space if req.kind is HoldKind.BREATHING_SPACE else (
        timedelta(days=req.days) if req.days else None)
    hold = Hold(kind=req.kind, start=now, end=now + length if length else None,
                reference=req.reference)
    st.holds.append(hold)
    entries = [c.record_event("hold_started", now, req.actor, kind=req.kind, start=hold.start,
                              end=hold.end, reference=req.reference, note=req.note)]
    if req.kind is HoldKind.HARDSHIP:  # a supervisor reviews every hardship claim
        entries += open_task(c, TaskKind.REVIEW_HARDSHIP, f"hardship:{len(st.holds)}", now,
                             assignee=c.policy.tasks.supervisor_queue,
                             note=req.note or req.reference)[1]
    if earlier is not None:  # honoured as registered; ops may ask the adviser to review
        window = c.pack.breathing_space_once_per.days
        why = (f"a breathing space started on {earlier.start.date()}, within {window} days; "
               "the debt adviser registered this one, so it is honoured - a review may be "
               "requested (Debt Respite Scheme reg 17)")
        entries.append(c.record_event("breathing_space_repeat", now, req.actor,
                                      earlier_start=earlier.start, reference=req.reference,
                                      detail=why))
        entries += open_task(c, TaskKind.REVIEW_MORATORIUM,
                             f"breathing_space:{len(st.holds)}", now,
                             assignee=c.policy.tasks.supervisor_queue, note=why)[1]
    return entries + c.sync_pause(now, req.actor)


def life_event(c: Collection, req: LifeEvent, now: datetime) -> list[LedgerEntry]:
    st = c.state.contacting.standing
    if req.kind == "deceased":
        st.deceased_at = st.deceased_at or now
    else:
        st.bankruptcy_at = st.bankruptcy_at or now
    entries = [c.record_event(req.kind, now, req.actor, reference=req.reference, note=req.note)]
    return entries + c.sync_pause(now, req.actor)

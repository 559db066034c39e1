"""The state of one loan in collection and every transition it can make.

Transitions are plain methods that mutate the state and return the ledger entries that
prove them. The workflow only decides *when* to call them (timers, signals, updates);
what they mean is decided here, where it can be tested without Temporal.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from pydantic_core import to_jsonable_python

from duecourse.domain.actor import SYSTEM, Actor
from duecourse.domain.agreements.terms import (
    PlanStatus,
    SettlementStatus,
)
from duecourse.domain.calendar import days_past_due, local_date, local_midnight, pin_zone, zone
from duecourse.domain.case.commands import (
    CancelRequest,
    ContactOutcomeReport,
    ContactResult,
    LegalDecision,
    PaymentReport,
    PromiseRequest,
)
from duecourse.domain.case.state import (
    CollectionState,
    LegalPhase,
    Outcome,
    Promise,
    PromiseStatus,
    Stage,
    StageVisit,
    StepRecord,
)
from duecourse.domain.compliance import (
    AttemptResult,
    ContactEvent,
    Decision,
    ProposedContact,
    Purpose,
    RecipientKind,
    RulePack,
    Verdict,
    Violation,
    decide,
    legal_action_problem,
    pack_for,
)
from duecourse.domain.compliance.engine import Context, freeze_reason
from duecourse.domain.compliance.requests import ContactRequest
from duecourse.domain.compliance.standing_rules import time_barred
from duecourse.domain.contact.outcomes import (
    ReportCheck,
    apply_outcome,
    person_key,
    refusal_keys,
    reported_violations,
)
from duecourse.domain.contact.recipients import recipient_for
from duecourse.domain.entries import (
    ComplianceDecided,
    ContactLogged,
    EventRecorded,
    LedgerEntry,
    PaymentRecorded,
    PromiseRecorded,
    StageChanged,
)
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel, Policy, Segment
from duecourse.domain.rules import RulesMigration, RulesSnapshot
from duecourse.domain.scoring import ScoreInput, ScoreResult


def event_entry(seq: int, event: str, now: datetime, actor: Actor = SYSTEM,
                **details: object) -> EventRecorded:
    """The `seq`-th named fact of a case. The name is in the key: a reset run whose facts
    come in another order never has one taken for another (and dropped as a duplicate)."""
    return EventRecorded(key=f"event:{seq}:{event}", occurred_at=now, actor=actor,
                         event=event,
                         details={k: to_jsonable_python(v) for k, v in details.items()})


def scoring_entries(number: int, segment: Segment | None, now: datetime,
                    result: ScoreResult | None, failure: str) -> list[EventRecorded]:
    """What a score means for a case in `segment`, as its fact number `number`: pure, so
    the hand-over activity writes exactly the entries the workflow then holds as written."""
    if result is None:
        return [event_entry(number, "scoring_failed", now, detail=failure,
                            segment_kept=segment)]
    if result.segment is segment:
        return []
    return [event_entry(number, "segment_changed", now, segment=result.segment,
                        previous=segment, score=result.score, reasons=result.reasons)]


class Collection:
    """Transitions over a `CollectionState` for one loan under one policy."""

    def __init__(self, loan: LoanIntake, policy: Policy, state: CollectionState) -> None:
        self.loan = loan
        self.policy = policy
        self.state = state
        self._computed_pack: RulePack | None = None
        self.tz = loan.borrower.timezone
        if state.rules is not None:
            self.adopt_rules(state.rules)

    def adopt_rules(self, rules: RulesSnapshot) -> None:
        """Run on `rules` from now on: its pack, holidays and pinned time zone rules."""
        self.tz = pin_zone(rules.zone, rules.zone_rules)  # first: it refuses bad rules
        self.state.rules = rules

    @classmethod
    def begin(cls, loan: LoanIntake, policy: Policy, now: datetime,
             case_id: str) -> tuple[Collection, list[LedgerEntry]]:
        """A new collection in the reminder stage, with the entries that record it."""
        state = CollectionState(case_id=case_id, opened_at=now, outstanding=loan.outstanding)
        collection = cls(loan, policy, state)
        return collection, collection.enter_stage(Stage.REMINDER, now, "loan handed over", SYSTEM)

    # ----------------------------------------------------------------- helpers
    def dpd(self, now: datetime) -> int:
        return days_past_due(self.loan.due_date, now, self.tz)

    @property
    def pack(self) -> RulePack:
        """The rule pack the loan runs on: its snapshot's, else (before the snapshot is
        taken) the jurisdiction's pack with this policy's overrides."""
        if self.state.rules is not None:
            return self.state.rules.pack
        if self._computed_pack is None:
            self._computed_pack = pack_for(self.loan.jurisdiction, self.policy.compliance)
        return self._computed_pack

    @property
    def cure_period(self) -> timedelta:
        """The policy's cure period, never shorter than the pack's default-notice minimum."""
        return max(self.policy.legal.cure_period, self.pack.min_default_notice or timedelta(0))

    def begin_scoring(self, now: datetime) -> ScoreInput:
        """The scorer's facts; behaviour that changes while it scores asks for another."""
        self.state.rescore = False
        return self.score_input(now)

    def score_input(self, now: datetime) -> ScoreInput:
        """Loan and behaviour facts for the segment scorer."""
        s, debtor = self.state, RecipientKind.DEBTOR
        attempts = [e for e in s.contacting.contacts if e.recipient_kind is debtor
                    and e.channel in (Channel.VOICE, Channel.SMS)]
        in_a_row = 0
        for event in reversed(attempts):
            if event.result not in (AttemptResult.FAILED, AttemptResult.UNANSWERED):
                break
            in_a_row += 1
        outcomes = [r for r in s.contacting.contacts if r.result is AttemptResult.ANSWERED]
        return ScoreInput(
            loan_id=self.loan.loan_id, days_past_due=self.dpd(now),
            outstanding_ratio=(s.outstanding / self.loan.principal).quantize(Decimal("0.01")),
            payments=len(s.payment_refs),
            paid_amount_ratio=(s.total_paid / self.loan.outstanding).quantize(Decimal("0.01")),
            promises_kept=sum(p.status is PromiseStatus.KEPT for p in s.agreements.promises),
            promises_broken=s.agreements.broken_promises,
            plans_broken=sum(p.status is PlanStatus.BROKEN for p in s.agreements.plans),
            conversations=len(outcomes),
            refusals=s.agreements.refusals,
            failed_attempts_in_a_row=in_a_row,
            invalid_contact=any(e.result is AttemptResult.FAILED and e.channel is Channel.VOICE
                                for e in attempts[-3:]),
            disputed=s.contacting.standing.dispute_open)

    def compliance_record(self) -> dict[str, object]:
        """What the ledger keeps of the rules this case runs under, besides the pack (which
        `open_loan` adds from the snapshot it takes)."""
        hours, paid = self.policy.contact_hours, self.loan.last_payment_date
        record: dict[str, object] = {
            "policy_hours": hours.model_dump(mode="json") if hours else None}
        if paid is not None:  # the limitation period may start from it (the audit's too)
            record["last_payment_date"] = paid.isoformat()
        return record

    def context(self) -> Context:
        rules = self.state.rules
        return Context(pack=self.pack, standing=self.state.contacting.standing,
                       history=self.state.contacting.contacts, timezone=self.tz,
                       region=self.loan.jurisdiction, policy_hours=self.policy.contact_hours,
                       due_date=self.loan.due_date,
                       holidays=frozenset(rules.holidays) if rules else None,
                       holiday_years=rules.holiday_years if rules else None,
                       business_holidays=frozenset(rules.business_holidays) if rules
                       and rules.business_holiday_years else None,
                       business_holiday_years=rules.business_holiday_years if rules else None,
                       other_zones=tuple(self.loan.borrower.other_timezones),
                       last_payment_on=self.last_payment_on)

    @property
    def last_payment_on(self) -> date | None:
        """Borrower-local date of the latest payment, before or during collection."""
        paid = self.state.last_paid_at
        during = local_date(paid, self.tz) if paid is not None else None
        known = [d for d in (self.loan.last_payment_date, during) if d is not None]
        return max(known, default=None)

    # ------------------------------------------------------------- compliance
    def decide_contact(self, channel: Channel, address: str, now: datetime,
                       purpose: Purpose = Purpose.COLLECTION,
                       recipient_kind: RecipientKind = RecipientKind.DEBTOR,
                       collectors: int = 1, discloses_debt: bool = True,
                       person: str = "", at_workplace: bool = False) -> Decision:
        """Ask the engine whether this contact may happen at `now` (`person`: who, when a
        guarantor or third party has several numbers; `at_workplace`: at their work)."""
        return decide(ProposedContact(channel=channel, at=now, address=address,
                                      purpose=purpose, recipient_kind=recipient_kind,
                                      collectors=collectors, discloses_debt=discloses_debt,
                                      person=person, at_workplace=at_workplace),
                      self.context())

    def record_decision(self, step: str, channel: Channel, address: str, decision: Decision,
                        purpose: Purpose = Purpose.COLLECTION,
                        recipient_kind: RecipientKind = RecipientKind.DEBTOR,
                        actor: Actor = SYSTEM) -> list[LedgerEntry]:
        """Prove the decision; remember a deferral so the planner waits for it."""
        s = self.state
        if decision.verdict is Verdict.DEFERRED and decision.until is not None:
            s.contacting.deferrals[f"{s.visit.visit}:{step}"] = decision.until
        slot = f"{s.visit.visit}:{step}:{channel}"
        s.contacting.decision_counts[slot] = n = s.contacting.decision_counts.get(slot, 0) + 1
        return [ComplianceDecided(
            key=f"decision:{slot}:{n}", occurred_at=decision.at, actor=actor,
            step=step, channel=channel, recipient=address, recipient_kind=recipient_kind,
            purpose=purpose, proposed_at=decision.at, verdict=decision.verdict,
            until=decision.until, valid_until=decision.valid_until, code=decision.code,
            rule=decision.rule, detail=decision.detail)]

    def agent_contact(self, request: ContactRequest,
                      now: datetime) -> tuple[Decision, list[LedgerEntry]]:
        """An agent asks before calling or visiting: the engine's decision, recorded; an
        allowed contact is logged and counts towards the limits."""
        address = request.address or recipient_for(request.channel, self.loan.borrower)
        if address is None:
            raise ValueError(f"no {request.channel} contact details on file")
        person = request.person or ""
        decision = self.decide_contact(request.channel, address, now, request.purpose,
                                       request.recipient_kind, request.collectors,
                                       request.discloses_debt, person, request.at_workplace)
        step = "agent-contact"  # who asked is in the actor columns
        entries = self.record_decision(step, request.channel, address, decision,
                                       request.purpose, request.recipient_kind, request.actor)
        if decision.allowed:
            self.contact_made(request.channel, address, now, request.purpose,
                              request.recipient_kind, person)
            entries.append(ContactLogged(
                key=f"contact-by-person:{entries[0].key}", occurred_at=now,
                actor=request.actor, stage=self.state.stage, step=step,
                channel=request.channel, recipient=address,
                recipient_kind=request.recipient_kind, purpose=request.purpose,
                person=person, at_workplace=request.at_workplace))
        return decision, entries

    def migrate_rules(self, migration: RulesMigration, now: datetime) -> list[LedgerEntry]:
        """Move to newer rules, with who and why in the ledger (ValueError: refused)."""
        before = self.state.rules
        self.adopt_rules(migration.rules)
        return [self.record_event(
            "rules_migrated", now, migration.actor, reason=migration.reason,
            previous=before.pack.title if before else None, pack=migration.rules.pack.title,
            rules=migration.rules.model_dump(mode="json"))]

    def contact_made(self, channel: Channel, address: str, now: datetime,
                     purpose: Purpose = Purpose.COLLECTION,
                     recipient_kind: RecipientKind = RecipientKind.DEBTOR,
                     person: str = "") -> None:
        """Add an allowed, performed contact to the history the engine counts."""
        s = self.state
        s.contacting.contacts.append(ContactEvent(at=now, channel=channel, address=address,
                                       recipient_kind=recipient_kind, purpose=purpose,
                                       person=person))
        standing = s.contacting.standing
        if purpose is Purpose.VALIDATION_NOTICE and standing.validation_notice_at is None:
            standing.validation_notice_at = now
        if purpose is Purpose.FORBEARANCE_OFFER:
            standing.forbearance_offered_at = now
            s.contacting.forbearance_pending = False
            s.legal.not_before = now + self.pack.forbearance_response
        if recipient_kind is RecipientKind.DEBTOR and s.contacting.first_contact_at is None:
            s.contacting.first_contact_at = now

    def time_barred(self, now: datetime) -> bool:
        """The debt's limitation period has run out: it is never sued on or threatened."""
        return time_barred(self.context(), now)

    def freeze_reason(self, now: datetime) -> Violation | None:
        """Why collection (contact and progression) is frozen now, if it is."""
        return freeze_reason(self.context(), now)

    def sync_pause(self, now: datetime, actor: Actor = SYSTEM) -> list[LedgerEntry]:
        """Freeze or resume after a change of standing (or when a hold runs out).

        Resuming gives the borrower back the frozen time: stage windows, the cure
        period and approval timers move later by the length of the freeze.
        """
        s = self.state
        reason = self.freeze_reason(now)
        if reason is not None and s.paused_since is None and not s.is_closed:
            s.paused_since = now
            entries = self._withdraw_promise(now, f"collection frozen: {reason.detail}")
            return [*entries, self.record_event("collection_frozen", now, actor, code=reason.code,
                                                rule=reason.rule, detail=reason.detail)]
        if reason is None and s.paused_since is not None:
            frozen_for = now - s.paused_since
            s.paused_since = None
            s.visit.paused += frozen_for
            if s.negotiation_deadline is not None:
                s.negotiation_deadline += frozen_for
            if s.legal.phase_at is not None:
                s.legal.phase_at += frozen_for
            return [self.record_event("collection_resumed", now, actor,
                                      frozen_for=str(frozen_for))]
        return []

    def escalate(self, now: datetime, reason: str, actor: Actor = SYSTEM) -> list[LedgerEntry]:
        """Enter the legal stage unless the rules forbid it (or want something first)."""
        s = self.state
        if s.stage is Stage.LEGAL:
            return [self.record_event("already_in_legal", now, actor, wanted=reason)]
        problem = legal_action_problem(self.context(), now)
        if problem is None:
            return self.enter_stage(Stage.LEGAL, now, reason, actor)
        if problem.code == "time_barred":
            s.legal.barred = problem.code
        elif problem.code == "forbearance":
            s.contacting.forbearance_pending = True
        return [self.record_event("legal_action_blocked", now, actor, wanted=reason,
                                  code=problem.code, rule=problem.rule, detail=problem.detail)]

    def record_event(self, event: str, now: datetime, actor: Actor = SYSTEM,
                     **details: object) -> EventRecorded:
        """A named fact of this case, numbered in the order the case made it."""
        self.state.event_seq += 1
        return event_entry(self.state.event_seq, event, now, actor, **details)

    def reserve_event_number(self) -> int:
        """A fact number for an entry an activity writes before the case knows it."""
        self.state.event_seq += 1
        return self.state.event_seq

    def scored(self, now: datetime, result: ScoreResult | None, failure: str = "",
               number: int | None = None) -> list[LedgerEntry]:
        """Take the scorer's answer (None: it failed, `failure` says why); a new segment
        changes the treatment, a failure keeps the segment as it was. `number` is the fact
        number reserved for it, if any."""
        s = self.state
        entries = scoring_entries(s.event_seq + 1 if number is None else number, s.segment,
                                  now, result, failure)
        if number is None:
            s.event_seq += len(entries)
        if result is not None and result.segment is not s.segment:
            s.segment, s.segment_reasons = result.segment, result.reasons
        return list(entries)

    def skip_stale_steps(self, steps: list[str], now: datetime) -> list[LedgerEntry]:
        """Planned nudges the loan reached too late: skipped, and counted."""
        entries: list[LedgerEntry] = []
        for name in steps:
            entries += self.record_step(name, "skipped", now, "superseded by a later step")
        self.state.contacting.late_skips += len(steps)
        return entries

    def needs_attention(self, kind: str, reason: str) -> bool:
        """The loan cannot go on by itself (`kind`: what failed); True the first time."""
        first = kind not in self.state.attention
        self.state.attention[kind] = reason
        return first

    def attention_cleared(self, kind: str) -> bool:
        """It went on again; True if it had needed attention for `kind`."""
        return self.state.attention.pop(kind, None) is not None

    def plan_reminder_done(self, instalment: int) -> None:
        """The reminder about `instalment` went (or had nothing left to remind about)."""
        if self.state.agreements.plan_reminders[:1] == [instalment]:
            self.state.agreements.plan_reminders.pop(0)

    def enter_stage(self, stage: Stage, now: datetime, reason: str,
               actor: Actor) -> list[LedgerEntry]:
        s = self.state
        previous = s.visits[-1] if s.visits else None
        if previous:
            previous.left_at = now
        entries: list[LedgerEntry] = self._withdraw_promise(now, f"loan moved to {stage}")
        s.visits.append(StageVisit(visit=len(s.visits) + 1, stage=stage, entered_at=now,
                                   reason=reason, actor=actor))
        s.stage = stage
        s.negotiation_deadline = (now + self.policy.negotiation.window
                                  if stage is Stage.NEGOTIATION else None)
        if stage is Stage.LEGAL:
            s.legal.phase, s.legal.phase_at, s.legal.approval_escalations = (
                LegalPhase.DEMAND_PENDING, now, 0)
        else:
            s.legal.phase = s.legal.phase_at = None
        entries.append(StageChanged(
            key=f"stage:{s.visit.visit}", occurred_at=now, actor=actor,
            from_stage=previous.stage if previous else None, to_stage=stage,
            reason=reason, days_past_due=self.dpd(now), outstanding=s.outstanding))
        return entries

    def close(self, outcome: Outcome, now: datetime, reason: str,
               actor: Actor) -> list[LedgerEntry]:
        s = self.state
        entries = self._withdraw_promise(now, f"loan closed as {outcome}")
        s.agreements.plan_reminders.clear()
        for plan in s.agreements.plans:  # paid in full, the plan completes itself (last instalment)
            if plan.status is PlanStatus.ACTIVE and outcome is not Outcome.PAID:
                plan.status = PlanStatus.CANCELLED  # the workflow stops its child
        # an agreement never outlives the loan's collection
        for settlement in s.agreements.settlements:
            if settlement.status in (SettlementStatus.PENDING_APPROVAL,
                                     SettlementStatus.ACCEPTED) and outcome is not \
                    Outcome.SETTLED:
                settlement.status = SettlementStatus.WITHDRAWN
        s.visit.left_at = now
        s.outcome, s.closed_at, s.close_reason = outcome, now, reason
        entries.append(StageChanged(
            key="closed", occurred_at=now, actor=actor, from_stage=s.stage, to_stage=None,
            outcome=outcome, reason=reason, days_past_due=self.dpd(now),
            outstanding=s.outstanding))
        return entries

    def _promise_entry(self, p: Promise, now: datetime) -> PromiseRecorded:
        return PromiseRecorded(
            key=f"promise:{p.promise_id}:{p.status}", occurred_at=now, actor=p.actor
            if p.status is PromiseStatus.ACTIVE else SYSTEM, promise_id=p.promise_id,
            amount=p.amount, currency=p.currency, due_date=p.due_date, status=p.status,
            note=p.note)

    def _withdraw_promise(self, now: datetime, why: str) -> list[LedgerEntry]:
        p = self.state.agreements.active_promise
        if p is None:
            return []
        p.status, p.resolved_at, p.note = PromiseStatus.WITHDRAWN, now, why
        return [self._promise_entry(p, now)]

    # ------------------------------------------------------------- payments
    def apply_payment(self, report: PaymentReport, now: datetime) -> list[LedgerEntry]:
        """Reduce the balance; a duplicate reference changes nothing; full payment closes."""
        s = self.state
        if report.reference in s.payment_refs:
            return [self.record_event("payment_duplicate_ignored", now, report.actor,
                                      reference=report.reference, amount=report.amount)]
        if report.amount.currency != self.loan.currency or not report.amount.is_positive:
            return [self.record_event("payment_rejected", now, report.actor,
                                      reference=report.reference, amount=report.amount,
                                      reason=f"expected a positive amount in {self.loan.currency}")]
        if s.is_closed:
            return [self.record_event("payment_after_close", now, report.actor,
                                      reference=report.reference, amount=report.amount,
                                      outcome=s.outcome, action="review for refund")]
        amount = report.amount.amount
        applied = min(amount, s.outstanding)
        s.rescore = True
        s.payment_refs.append(report.reference)
        s.last_paid_at = max(s.last_paid_at or report.paid_at, report.paid_at)
        s.outstanding -= applied
        s.total_paid += amount
        entries: list[LedgerEntry] = [PaymentRecorded(
            key=f"payment:{report.reference}", occurred_at=now, actor=report.actor,
            reference=report.reference, amount=amount, currency=report.amount.currency,
            paid_at=report.paid_at, applied=applied, overpaid=amount - applied,
            outstanding_after=s.outstanding)]
        promise = s.agreements.active_promise
        if promise and s.total_paid - promise.paid_before >= promise.amount:
            promise.status, promise.resolved_at = PromiseStatus.KEPT, now
            entries.append(self._promise_entry(promise, now))
            if s.stage is Stage.NEGOTIATION:
                s.negotiation_deadline = now + self.policy.negotiation.window
        if s.outstanding <= 0:
            entries += self.close(Outcome.PAID, now, f"paid in full ({report.reference})",
                                  report.actor)
        return entries

    # ------------------------------------------------------------- contacts
    def record_contact_outcome(self, report: ContactOutcomeReport,
                               now: datetime) -> list[LedgerEntry]:
        self._record_attempt_result(report, now)
        self.state.rescore = True
        debtor = report.kind is RecipientKind.DEBTOR
        if report.result is ContactResult.REFUSED and debtor:
            self.state.agreements.refusals += 1
        entries: list[LedgerEntry] = [self.record_event(
            "contact_outcome", now, report.actor, channel=report.channel,
            result=report.result, note=report.note, address=report.address,
            third_party=report.third_party, recipient_kind=report.kind,
            person=report.person, recontact_invited=report.recontact_invited,
            **({"collectors": report.collectors} if report.collectors > 1 else {}),
            **({"recording": report.recording} if report.recording else {}))]
        # a third party is never told of the debt: only the borrower (or the guarantor,
        # who owes it too) can engage in negotiating it
        if report.result.engaged and report.kind is not RecipientKind.THIRD_PARTY and \
                self.state.stage is Stage.REMINDER and not self.state.is_closed:
            who = "borrower" if debtor else str(report.kind)
            entries += self.enter_stage(Stage.NEGOTIATION, now,
                                   f"{who} engaged ({report.result} via {report.channel})",
                                   report.actor)
        return entries

    def contact_check(self, report: ContactOutcomeReport, now: datetime) -> ReportCheck:
        """The rules the contact behind `report` broke if it is recorded at `now`: a
        contact the agent made without asking first is judged against the history and
        standing from before it, by the same engine and the same rules as the audit - so
        the agent hears it now, not from an audit later. One that completes a contact we
        cleared broke nothing new (it was judged when asked). Changes nothing: the query
        asks it before the report is signalled, and the signal before recording it."""
        s = self.state
        applied = apply_outcome(list(s.contacting.contacts), now, report.channel, report.kind,
                                report.address, report.person, report.result,
                                self.loan.borrower)  # a copy: a completion stays unmade
        local = now.astimezone(zone(self.tz))
        return ReportCheck(at=now,
                           local_time=f"{local:%Y-%m-%d %H:%M} {self.loan.borrower.timezone}",
                           violations=reported_violations(applied.added, self.context(),
                                                          report.collectors))

    def _record_attempt_result(self, report: ContactOutcomeReport, now: datetime) -> None:
        """Complete the latest matching attempt to the same person in the history, or add
        the contact the agent made (it counts towards that person's limits either way), or
        the conversation an inbound call was (it starts the quiet period after one)."""
        s, kind = self.state, report.kind
        applied = apply_outcome(s.contacting.contacts, now, report.channel, kind, report.address,
                                report.person, report.result, self.loan.borrower)
        result, event = applied.result, applied.event
        if applied.added is not None:
            s.contacting.contacts.append(applied.added)
        for key in refusal_keys(kind, result, report.address, report.person, event):
            if key not in s.contacting.standing.refused_third_parties:
                s.contacting.standing.refused_third_parties.append(key)
        if report.recontact_invited:  # 15 USC 1692b(3): they may be contacted again
            key = person_key(kind, report.address, report.person, event)
            if key not in s.contacting.standing.recontact_invited:
                s.contacting.standing.recontact_invited.append(key)

    def record_step(self, step: str, status: str, now: datetime, detail: str = "",
                    ) -> list[LedgerEntry]:
        """Mark a scheduled step of the current stage visit as sent, skipped or failed."""
        s = self.state
        s.contacting.steps.append(StepRecord(visit=s.visit.visit, step=step, status=status, at=now,
                                  detail=detail))
        s.contacting.deferrals.pop(f"{s.visit.visit}:{step}", None)
        if status == "sent":
            return []  # the contact attempt row written by send_message is the proof
        return [self.record_event(f"contact_{status}", now, step=step, stage=s.stage,
                                  detail=detail)]

    # ------------------------------------------------------------- promises
    def promise_problem(self, req: PromiseRequest, now: datetime) -> str | None:
        """Why a promise cannot be accepted now, or None if it can."""
        s, rules = self.state, self.policy.promise
        if s.is_closed:
            return f"the loan is closed ({s.outcome})"
        if s.stage is Stage.LEGAL:
            return "the loan is in the legal stage; promises are agreed before legal action"
        if (plan := s.agreements.active_plan) is not None:
            return f"plan {plan.plan_id} is active; the plan's instalments are the promise"
        if (offer := s.agreements.open_settlement) is not None:
            return f"settlement {offer.settlement_id} is {offer.status.value.lower()}"
        if (active := s.agreements.active_promise) is not None:
            return (f"promise {active.promise_id} for {active.amount} {active.currency} due "
                    f"{active.due_date} is still active")
        if req.amount.currency != self.loan.currency:
            return f"amount must be in {self.loan.currency}, got {req.amount.currency}"
        if not req.amount.is_positive:
            return "amount must be greater than zero"
        if req.amount.amount > s.outstanding:
            return (f"amount {req.amount} exceeds the outstanding balance "
                    f"{s.outstanding} {self.loan.currency}")
        today = local_date(now, self.tz)
        limit = (rules.max_days_ahead_after_broken if s.agreements.broken_promises
                 else rules.max_days_ahead)
        if req.due_date < today:
            return f"promised date {req.due_date} is in the past (today is {today})"
        if req.due_date > today + timedelta(days=limit):
            return (f"promised date {req.due_date} is more than {limit} days ahead; the "
                    f"latest allowed is {today + timedelta(days=limit)}")
        return None

    def make_promise(self, req: PromiseRequest, now: datetime) -> tuple[Promise,
                                                                        list[LedgerEntry]]:
        problem = self.promise_problem(req, now)
        if problem:
            raise ValueError(problem)
        s = self.state
        check_day = req.due_date + timedelta(days=self.policy.promise.grace_days + 1)
        check_at = local_midnight(check_day, self.tz)
        if self.policy.demo is not None:
            check_at = min(check_at, now + self.policy.demo.promise_judged_after)
        promise = Promise(
            promise_id=f"P{len(s.agreements.promises) + 1}", amount=req.amount.amount,
            currency=req.amount.currency, due_date=req.due_date, made_at=now,
            check_at=check_at, actor=req.actor,
            paid_before=s.total_paid, note=req.note)
        entries: list[LedgerEntry] = []
        if s.stage is Stage.REMINDER:
            entries += self.enter_stage(Stage.NEGOTIATION, now, "promise to pay agreed", req.actor)
        s.agreements.promises.append(promise)
        entries.append(self._promise_entry(promise, now))
        return promise, entries

    def check_promise(self, now: datetime) -> list[LedgerEntry]:
        """After the promised date plus grace: kept, or broken (and maybe escalate)."""
        s = self.state
        promise = s.agreements.active_promise
        if promise is None:
            return []
        kept = s.total_paid - promise.paid_before >= promise.amount
        promise.status = PromiseStatus.KEPT if kept else PromiseStatus.BROKEN
        s.rescore = True
        promise.resolved_at = now
        entries: list[LedgerEntry] = [self._promise_entry(promise, now)]
        if kept:
            s.negotiation_deadline = now + self.policy.negotiation.window
        elif s.agreements.broken_promises >= self.policy.promise.max_broken:
            entries += self.escalate(now, f"{s.agreements.broken_promises} broken promises to pay")
        return entries

    # ------------------------------------------------------------- stages
    def end_reminder(self, now: datetime) -> list[LedgerEntry]:
        return self.enter_stage(Stage.NEGOTIATION, now, "no response by the end of the reminder "
                           "window", SYSTEM)

    def end_negotiation(self, now: datetime) -> list[LedgerEntry]:
        s = self.state
        entries = self.escalate(now, "no agreement within the negotiation window")
        if s.stage is Stage.NEGOTIATION and s.negotiation_deadline is not None:
            s.negotiation_deadline = max(s.negotiation_deadline, now)  # wait, don't re-fire
        return entries

    def demand_sent(self, now: datetime, delivered: bool, detail: str) -> list[LedgerEntry]:
        """The parent sent (or could not send) the demand the legal case asked for."""
        s = self.state
        s.legal.demand_requested = False
        if not delivered:
            return [self.record_event("demand_undeliverable", now, detail=detail)]
        s.legal.phase, s.legal.phase_at = LegalPhase.CURE_PERIOD, now
        cure_ends = now + self.cure_period
        return [self.record_event("demand_sent", now, cure_period_ends=cure_ends.isoformat())]

    def cure_expired(self, now: datetime,
                     why: str = "cure period ended unpaid") -> list[LedgerEntry]:
        s = self.state
        s.legal.phase, s.legal.phase_at = LegalPhase.AWAITING_APPROVAL, now
        return [self.record_event("legal_approval_requested", now, why=why,
                                  outstanding=s.outstanding)]

    def approval_overdue(self, now: datetime) -> list[LedgerEntry]:
        s = self.state
        s.legal.approval_escalations += 1
        waited = now - (s.legal.phase_at or now)
        return [self.record_event("legal_approval_overdue", now,
                                  escalation=s.legal.approval_escalations,
                                  waiting_for=str(waited))]

    def legal_decision_problem(self, decision: LegalDecision) -> str | None:
        s = self.state
        if s.is_closed:
            return f"the loan is closed ({s.outcome})"
        if s.legal.phase is not LegalPhase.AWAITING_APPROVAL:
            where = f"legal phase {s.legal.phase}" if s.legal.phase else f"stage {s.stage}"
            return f"no legal referral is awaiting approval (loan is in {where})"
        if decision.actor.kind.value != "supervisor":
            return f"only a supervisor may decide a legal referral, not {decision.actor.kind}"
        return None

    def decide_legal(self, decision: LegalDecision, now: datetime) -> list[LedgerEntry]:
        problem = self.legal_decision_problem(decision)
        if problem:
            raise ValueError(problem)
        s = self.state
        if decision.approve:
            s.legal.phase, s.legal.phase_at = LegalPhase.REFERRED, now
            return [self.record_event("legal_referral_approved", now, decision.actor,
                                      reason=decision.reason, outstanding=s.outstanding)]
        return [self.record_event("legal_referral_rejected", now, decision.actor,
                                  reason=decision.reason),
                *self.enter_stage(Stage.NEGOTIATION, now,
                             f"legal referral rejected: {decision.reason}", decision.actor)]

    def write_off(self, now: datetime) -> list[LedgerEntry]:
        demo = self.policy.demo
        why = (f"{demo.write_off_after.total_seconds() / 60:g} minutes after hand-over "
               "(demo policy)"
               if demo is not None and self.dpd(now) < self.policy.write_off_dpd
               else f"reached {self.policy.write_off_dpd} days past due")
        return self.close(Outcome.WRITTEN_OFF, now, why, SYSTEM)

    def cancel(self, req: CancelRequest, now: datetime) -> list[LedgerEntry]:
        if self.state.is_closed:
            return [self.record_event("cancel_ignored", now, req.actor, reason=req.reason,
                                      outcome=self.state.outcome)]
        return self.close(Outcome.CANCELLED, now, req.reason, req.actor)

"""The independent compliance audit: re-check every contact in the ledger, from the
ledger alone.

For each case it rebuilds the borrower's standing (opt-outs, inconvenient times, cease,
attorney, E-SIGN consent, SMS consent, an employer's ban on contact at work and the
addresses it gave, disputes and whether they were written, holds - a crisis moratorium's
run-on after its treatment included - bankruptcy, death, third parties who refused or
asked to be contacted again) and the contact history purely from `audit_events` and
`contact_attempts`, each contact attributed to the person it was with (the debtor, a
guarantor, a third party: the limits count per person, as the collection counted them; a
call the person made to us is a conversation that counts, never a contact of ours to
check), and the case's own facts (the due date, the other zones the borrower may be in,
the last payment before hand-over and those recorded since, as borrower-local dates), then
asks the rule engine's `violations()` about every contact at the moment it actually went
out (when its send passed its last check, not when it was planned), under the rule pack
the case recorded - including contacts an agent only reported afterwards (an outcome with
no contact behind it), checked as made when reported. It also flags a message that went
out after the case closed, or outside the lawful window of the decision that allowed it.
Workflow state is never consulted, so a bug in the workflow (or a row written by hand)
shows up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from duecourse.domain import compliance
from duecourse.domain.calendar import local_date, pin_zone
from duecourse.domain.case.commands import ContactResult
from duecourse.domain.compliance.engine import Context
from duecourse.domain.contact.outcomes import apply_outcome, as_proposed, person_key, refusal_keys
from duecourse.domain.loan import Borrower
from duecourse.domain.policy import Channel, ContactHours
from duecourse.domain.rules import RulesSnapshot
from duecourse.store import tables as t
from duecourse.store.ledger import Ledger


class Finding(BaseModel):
    loan_id: str
    case_id: str
    at: datetime
    channel: str
    recipient: str
    step: str
    code: str
    rule: str
    detail: str


class AuditReport(BaseModel):
    since: datetime | None
    cases: int
    contacts_checked: int
    decisions: dict[str, int]  # "verdict" and "verdict/code" -> count
    violations: list[Finding]
    unresolved_sends: int = 0  # claimed or in-doubt rows, not known sent or not: a look

    @property
    def clean(self) -> bool:
        return not self.violations


DELIVERED = ("sent", "made_by_person")
"""Contact attempts that reached the borrower (or were made by a person)."""


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _apply(standing: compliance.Standing, kind: str, at: datetime, data: dict[str, Any]) -> None:
    """Replay one recorded fact onto the standing (mirrors what the ledger proves)."""
    details = data.get("details") or {}
    if kind == "opted_out":
        standing.opted_out.setdefault(Channel(details["channel"]), at)
    elif kind == "opted_in":
        standing.opted_out.pop(Channel(details["channel"]), None)
    elif kind == "inconvenient_times":
        standing.inconvenient = [compliance.InconvenientTime.model_validate(w)
                                 for w in details.get("windows", [])]
    elif kind == "cease_communication":
        standing.cease_communication_at = standing.cease_communication_at or at
    elif kind == "attorney_represents":
        standing.attorney_at = standing.attorney_at or at
    elif kind == "esign_consent":
        standing.esign_consent_at = standing.esign_consent_at or at
    elif kind == "sms_consent":
        standing.sms_consent_at = standing.sms_consent_at or at
    elif kind == "sms_consent_withdrawn":
        standing.sms_consent_at = None
    elif kind == "workplace_contact_prohibited":
        standing.workplace_contact_prohibited_at = \
            standing.workplace_contact_prohibited_at or at
    elif kind == "employer_provided_address":
        if details.get("address") and details["address"] not in standing.employer_provided:
            standing.employer_provided.append(details["address"])
    elif kind == "dispute_opened":
        standing.dispute_opened_at = at
        standing.dispute_written = bool(details.get("written"))
    elif kind == "dispute_verified":
        standing.dispute_verified_at = at
    elif kind == "hold_started":
        standing.holds.append(compliance.Hold(kind=compliance.HoldKind(details["kind"]),
                                              start=_dt(details.get("start")) or at,
                                              end=_dt(details.get("end"))))
    elif kind in ("hold_ended", "crisis_treatment_ended"):
        # a crisis moratorium's treatment ended: it runs on until the `end` recorded
        end = _dt(details.get("end")) or at
        standing.holds = [h.model_copy(update={"end": end}) if h.kind.value == details["kind"]
                          and h.covers(at) else h for h in standing.holds]
    elif kind == "bankruptcy":
        standing.bankruptcy_at = standing.bankruptcy_at or at
    elif kind == "deceased":
        standing.deceased_at = standing.deceased_at or at


def _kind(details: dict[str, Any]) -> compliance.RecipientKind:
    """Who an outcome was with: recorded since guarantors count as themselves; older
    outcomes say only whether it was a third party."""
    if details.get("recipient_kind"):
        return compliance.RecipientKind(details["recipient_kind"])
    third_party = details.get("third_party")
    return compliance.RecipientKind.THIRD_PARTY if third_party else compliance.RecipientKind.DEBTOR


def _outcome(history: list[compliance.ContactEvent], at: datetime, details: dict[str, Any],
             borrower: Borrower) -> tuple[compliance.ContactEvent | None, str | None, list[str]]:
    """Apply a reported outcome as the collection did (`duecourse.domain.contact.outcomes`). It
    completes the contact it reports on when the ledger holds one (a message sent, or a
    call the agent asked about first) for the same person; otherwise it is a contact
    nobody asked the engine about, or the conversation an inbound call was (`inbound`:
    never checked as a contact of ours), returned for the audit to add to the history.
    Also returns the third party who may be contacted again, if they asked, and the keys
    of one who refused further contact (their address and person)."""
    try:
        result = ContactResult(details.get("result", ""))
    except ValueError:
        result = ContactResult.NO_ANSWER  # an unknown result: a call nobody talked on
    kind, channel = _kind(details), Channel(details["channel"])
    address, person = details.get("address"), details.get("person")
    applied = apply_outcome(history, at, channel, kind, address, person, result, borrower)
    invited = person_key(kind, address, person, applied.event) \
        if details.get("recontact_invited") else None
    return applied.added, invited, refusal_keys(kind, applied.result, address, person,
                                                applied.event)


async def run_audit(ledger: Ledger, since: datetime | None = None) -> AuditReport:
    async with ledger.engine.connect() as conn:
        cases = (await conn.execute(select(t.collection_cases))).mappings().all()
        loans = {r["loan_id"]: r for r in (await conn.execute(select(t.loans))).mappings()}
        query = select(t.compliance_decisions)
        if since is not None:
            query = query.where(t.compliance_decisions.c.proposed_at >= since)
        decisions = (await conn.execute(query)).mappings().all()
    counts: Counter[str] = Counter()
    for d in decisions:
        counts[d["verdict"]] += 1
        if d["code"]:
            counts[f"{d['verdict']}/{d['code']}"] += 1
    windows = {d["idempotency_key"]: (d["proposed_at"], d["valid_until"]) for d in decisions}
    findings: list[Finding] = []
    checked = unresolved = 0
    for case in cases:
        loan = loans[case["loan_id"]]
        recorded = case["compliance"] or {}
        hours = recorded.get("policy_hours")
        found, n, open_sends = await _audit_case(
            ledger, case, loan, _rules_of(recorded, loan),
            ContactHours.model_validate(hours) if hours else None, since, windows)
        findings += found
        checked += n
        unresolved += open_sends
    return AuditReport(since=since, cases=len(cases), contacts_checked=checked,
                       decisions=dict(sorted(counts.items())), violations=findings,
                       unresolved_sends=unresolved)


@dataclass(frozen=True)
class _Rules:
    """What a case's contacts are judged by: its pack, and (from the snapshot the loan ran
    on) its zone rules and public holidays - not whatever is installed where the audit
    runs."""

    pack: compliance.RulePack
    timezone: str
    holidays: frozenset[date] | None = None
    holiday_years: tuple[int, int] | None = None
    business_holidays: frozenset[date] | None = None  # national: counting business days
    business_holiday_years: tuple[int, int] | None = None


def _rules_of(recorded: dict[str, Any], loan: Any) -> _Rules:
    zone = loan["borrower"]["timezone"]
    if recorded.get("rules"):
        return _from_snapshot(RulesSnapshot.model_validate(recorded["rules"]))
    pack = (compliance.RulePack.model_validate(recorded["pack"]) if recorded.get("pack")
            else compliance.pack_for(loan["jurisdiction"]))
    return _Rules(pack=pack, timezone=zone)


def _from_snapshot(snapshot: RulesSnapshot) -> _Rules:
    years = snapshot.business_holiday_years
    return _Rules(pack=snapshot.pack, timezone=pin_zone(snapshot.zone, snapshot.zone_rules),
                  holidays=frozenset(snapshot.holidays), holiday_years=snapshot.holiday_years,
                  business_holidays=frozenset(snapshot.business_holidays) if years else None,
                  business_holiday_years=years)


def _sent_at(row: Any) -> datetime:
    """When a contact went out: its send's last check, else (older rows, agents' own
    contacts) when it was scheduled."""
    return row.get("fenced_at") or row["scheduled_for"]


def _delivery_findings(row: Any, case: Any,
                       windows: dict[str, tuple[datetime, datetime | None]]) -> list[Finding]:
    """A message that went out after the case closed, or outside the window its decision
    allowed (the compliance engine's verdict was for then, not for later)."""
    at, out = _sent_at(row), []

    def finding(code: str, rule: str, detail: str) -> Finding:
        return Finding(loan_id=case["loan_id"], case_id=case["case_id"], at=at,
                       channel=row["channel"], recipient=row["recipient"], step=row["step"],
                       code=code, rule=rule, detail=detail)

    closed = case["closed_at"]
    if closed is not None and at > closed:
        out.append(finding("after_close", "no contact once a loan is closed",
                           f"sent after the case closed as {case['outcome']} at "
                           f"{closed.isoformat()}"))
    window = windows.get(row.get("decision_key") or "")
    if window is not None:
        proposed, valid_until = window
        last = row.get("sent_at") or at
        if at < proposed or (valid_until is not None and last > valid_until):
            out.append(finding("outside_decided_window", "a contact goes out within the "
                               "lawful window it was allowed for",
                               f"allowed from {proposed.isoformat()} until "
                               f"{valid_until.isoformat() if valid_until else '-'}, sent "
                               f"{last.isoformat()}"))
    return out


async def _audit_case(ledger: Ledger, case: Any, loan: Any, rules: _Rules,
                      policy_hours: ContactHours | None, since: datetime | None,
                      windows: dict[str, tuple[datetime, datetime | None]],
                      ) -> tuple[list[Finding], int, int]:
    events = await ledger.rows(t.audit_events, case_id=case["case_id"])
    rows = await ledger.rows(t.contact_attempts, case_id=case["case_id"])
    contacts = [c for c in rows if c["status"] in DELIVERED]
    # who an agent's own contact was with and where (its row has the address only)
    people = {e["idempotency_key"]: e["data"] for e in events
              if e["kind"] == "contact_logged"}
    unresolved = sum(c["status"] in ("claimed", "in_doubt") for c in rows)
    timeline: list[tuple[datetime, int, str, Any]] = (
        [(e["occurred_at"], 2 if e["kind"] == "contact_outcome" else 0, "event", e)
         for e in events if e["kind"] not in ("contact_attempt", "contact_logged")]
        # an outcome recorded in the same instant as its contact comes after it
        + [(_sent_at(c), 1, "contact", c) for c in contacts])
    timeline.sort(key=lambda item: (item[0], item[1], item[3]["id"]))
    standing, history = compliance.Standing(), []  # type: ignore[var-annotated]
    findings: list[Finding] = []
    checked = 0
    # the loan as this case was handed it (the loans row keeps the first hand-over's)
    intake = next((e["data"].get("loan") or {} for e in events
                   if e["kind"] == "case_opened"), {})
    debtor = Borrower.model_construct(**(intake.get("borrower") or loan["borrower"]))
    paid_before = (case["compliance"] or {}).get("last_payment_date") or \
        intake.get("last_payment_date")
    last_paid: datetime | None = None  # the latest payment recorded during collection

    def last_payment_on(tz: str) -> date | None:
        """Borrower-local date of the latest payment, before or during collection (as
        `Collection.last_payment_on`)."""
        known = [d for d in (date.fromisoformat(paid_before) if paid_before else None,
                             local_date(last_paid, tz) if last_paid else None) if d]
        return max(known, default=None)

    def check(contact: compliance.ProposedContact, step: str) -> None:
        nonlocal checked
        if since is not None and contact.at < since:
            return
        checked += 1
        ctx = Context(pack=rules.pack, standing=standing.model_copy(deep=True),
                      history=list(history), timezone=rules.timezone,
                      region=loan["jurisdiction"], policy_hours=policy_hours,
                      due_date=case["due_date"], holidays=rules.holidays,
                      holiday_years=rules.holiday_years,
                      business_holidays=rules.business_holidays,
                      business_holiday_years=rules.business_holiday_years,
                      other_zones=tuple(debtor.other_timezones),
                      last_payment_on=last_payment_on(rules.timezone))
        findings.extend(Finding(loan_id=case["loan_id"], case_id=case["case_id"],
                                at=contact.at, channel=contact.channel.value,
                                recipient=contact.address, step=step, code=v.code,
                                rule=v.rule, detail=v.detail)
                        for v in compliance.violations(contact, ctx))

    for at, _, what, row in timeline:
        if what == "event":
            if row["kind"] == "rules_migrated":  # the loan runs on the new rules from here
                rules = _from_snapshot(RulesSnapshot.model_validate(
                    row["data"]["details"]["rules"]))
                continue
            if row["kind"] == "payment":  # as the collection saw it: paid_at, local date
                paid = _dt(row["data"].get("paid_at"))
                if paid is not None:
                    last_paid = max(last_paid or paid, paid)
                continue
            if row["kind"] != "contact_outcome":
                _apply(standing, row["kind"], at, row["data"])
                continue
            details = row["data"].get("details") or {}
            made, invited, refused = _outcome(history, at, details, debtor)
            if made is not None and not made.inbound:  # reported, never asked: check it
                check(as_proposed(made.model_copy(update={"at": at}),
                                  int(details.get("collectors", 1))),
                      f"reported by {row['actor_id']}")
            if made is not None:  # an inbound call is only a conversation to count
                history.append(made)
            # an invitation or a refusal counts from after the contact it came in
            if invited is not None and invited not in standing.recontact_invited:
                standing.recontact_invited.append(invited)
            standing.refused_third_parties += [
                k for k in refused if k not in standing.refused_third_parties]
            continue
        by_person = people.get(row["idempotency_key"], {})
        kind = compliance.RecipientKind(row["recipient_kind"])
        contact = compliance.ProposedContact(
            channel=Channel(row["channel"]), at=at, address=row["recipient"],
            recipient_kind=kind, discloses_debt=kind is not compliance.RecipientKind.THIRD_PARTY,
            purpose=compliance.Purpose(row["purpose"]), person=by_person.get("person") or "",
            at_workplace=bool(by_person.get("at_workplace")))
        check(contact, row["step"])
        if since is None or contact.at >= since:
            findings += _delivery_findings(row, case, windows)
        history.append(compliance.ContactEvent(
            at=at, channel=contact.channel, address=contact.address,
            recipient_kind=contact.recipient_kind, purpose=contact.purpose,
            person=contact.person))
        if (contact.purpose is compliance.Purpose.VALIDATION_NOTICE
                and standing.validation_notice_at is None):
            standing.validation_notice_at = at
        if contact.purpose is compliance.Purpose.FORBEARANCE_OFFER:
            standing.forbearance_offered_at = at
    return findings, checked, unresolved

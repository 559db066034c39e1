"""The facts the rules engine knows, recorded end to end: who a contact was with (per
person), E-SIGN consent, an employer's ban and the addresses it gave, written disputes,
registered moratoria (never refused), the crisis moratorium's 30 days after treatment,
mental capacity - and the audit applying the same per-person rules to the ledger.

Pure domain tests build a `Collection` on a policy without compliance overrides, so the
packs say what the law says (the standard policy may be stricter, explicitly)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from duecourse.audit import _apply, run_audit
from duecourse.cli.app import app
from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.compliance import (
    AttemptResult,
    HoldKind,
    Purpose,
    RecipientKind,
    Standing,
    Verdict,
)
from duecourse.domain.compliance.model import person_of
from duecourse.domain.compliance.requests import (
    ContactRequest,
    DisputeChange,
    HoldRequest,
    PreferenceChange,
)
from duecourse.domain.contact.protections import (
    change_dispute,
    change_hold,
    change_preferences,
    hold_problem,
)
from duecourse.domain.entries import ContactLogged, EventRecorded, LedgerEntry, TaskRecorded
from duecourse.domain.policy import Channel, Policy
from duecourse.domain.work.completion import complete_task, task_problem
from duecourse.domain.work.queue import TaskCompletion, TaskKind
from duecourse.intake import format_validation_error
from duecourse.policies import load_policy
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.temporal.contracts import OpenLoan, RecordEntries
from tests.conftest import Harness, advance_to_local
from tests.factories import AGENT, SUPERVISOR, make_loan, payment

NEW_YORK, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
LAW = load_policy("standard").model_copy(update={"compliance": {}, "segments": {}})
"""The standard policy with no compliance overrides: the packs as the law has them."""
DEBTOR_PHONE, GUARANTOR_PHONE, GUARANTOR_WORK = ("+12125550134", "+12125550199",
                                                 "+12125550177")
EMPLOYER_EMAIL = "maria.lopez@acme-corp.example"


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def us(policy: Policy = LAW) -> Collection:
    now = local(NEW_YORK, 2026, 11, 28, 10, 0)
    loan = make_loan(now, dpd=10, tz="America/New_York", jurisdiction="US-NY",
                     currency="USD", language="en", phones=[DEBTOR_PHONE],
                     email="maria@example.com")
    return Collection.begin(loan, policy, now, case_id="c-us")[0]


def gb() -> Collection:
    now = local(LONDON, 2026, 11, 28, 10, 0)
    loan = make_loan(now, dpd=10, tz="Europe/London", jurisdiction="GB", currency="GBP",
                     language="en", phones=["+447700900123"])
    return Collection.begin(loan, LAW, now, case_id="c-gb")[0]


def events(entries: list, kind: str | None = None) -> list[EventRecorded]:
    return [e for e in entries if isinstance(e, EventRecorded)
            and (kind is None or e.event == kind)]


def guarantor_report(result: ContactResult, **kwargs: object) -> ContactOutcomeReport:
    return ContactOutcomeReport(channel=Channel.VOICE, result=result, actor=AGENT,
                                recipient_kind=RecipientKind.GUARANTOR, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ per person
def test_a_guarantor_conversation_defers_the_next_call_to_the_guarantor_only() -> None:
    c = us()
    monday = local(NEW_YORK, 2026, 11, 30, 14, 0)
    asked = c.decide_contact(Channel.VOICE, GUARANTOR_PHONE, monday,
                             recipient_kind=RecipientKind.GUARANTOR, person="G-1")
    assert asked.allowed
    c.contact_made(Channel.VOICE, GUARANTOR_PHONE, monday,
                   recipient_kind=RecipientKind.GUARANTOR, person="G-1")
    entries = c.record_contact_outcome(guarantor_report(ContactResult.REACHED, person="G-1"),
                                       monday + timedelta(minutes=6))
    # the report completed the guarantor's own call: theirs, not the debtor's
    assert len(c.state.contacting.contacts) == 1
    talk = c.state.contacting.contacts[0]
    assert (talk.recipient_kind, talk.person, talk.result) == (
        RecipientKind.GUARANTOR, "G-1", AttemptResult.ANSWERED)
    details = events(entries, "contact_outcome")[0].details
    assert details["recipient_kind"] == "guarantor" and details["person"] == "G-1"
    assert c.state.agreements.refusals == 0

    tuesday = local(NEW_YORK, 2026, 12, 1, 18, 9)
    again = c.decide_contact(Channel.VOICE, GUARANTOR_WORK, tuesday,
                             recipient_kind=RecipientKind.GUARANTOR, person="G-1")
    assert again.verdict is Verdict.DEFERRED and again.code == "after_conversation"
    # seven consecutive days after Monday's conversation: the next Monday from 08:00
    assert again.until == local(NEW_YORK, 2026, 12, 7, 8, 0)
    assert c.decide_contact(Channel.VOICE, DEBTOR_PHONE, tuesday).allowed, \
        "the guarantor's conversation does not count for the debtor"
    other = c.decide_contact(Channel.VOICE, "+12125550188", tuesday,
                             recipient_kind=RecipientKind.GUARANTOR, person="G-2")
    assert other.allowed, "a second guarantor is another person"


def test_a_guarantor_outcome_nobody_asked_about_counts_for_the_guarantor() -> None:
    c = us()
    monday = local(NEW_YORK, 2026, 11, 30, 11, 0)
    c.record_contact_outcome(guarantor_report(ContactResult.REFUSED,
                                              address=GUARANTOR_PHONE), monday)
    made = c.state.contacting.contacts[-1]
    assert (made.recipient_kind, made.address, made.result, made.who) == (
        RecipientKind.GUARANTOR, GUARANTOR_PHONE, AttemptResult.ANSWERED,
        f"guarantor:{GUARANTOR_PHONE}")
    assert c.state.agreements.refusals == 0, "the guarantor's refusal is not the borrower's"
    later = c.decide_contact(Channel.VOICE, GUARANTOR_PHONE, monday + timedelta(days=2),
                             recipient_kind=RecipientKind.GUARANTOR)
    assert later.code == "after_conversation"


def test_a_third_party_asked_to_be_called_again_may_be_contacted_again() -> None:
    c = us()
    for _ in range(3):  # the debtor cannot be reached
        c.record_contact_outcome(ContactOutcomeReport(
            channel=Channel.VOICE, result=ContactResult.NO_ANSWER, actor=AGENT),
            local(NEW_YORK, 2026, 11, 30, 10, 0))
    neighbour = "+12125550111"
    first = local(NEW_YORK, 2026, 12, 1, 10, 0)

    def ask(at: datetime) -> Verdict:
        return c.decide_contact(Channel.VOICE, neighbour, at, Purpose.LOCATION,
                                RecipientKind.THIRD_PARTY, discloses_debt=False).verdict

    assert ask(first) is Verdict.ALLOWED
    c.contact_made(Channel.VOICE, neighbour, first, Purpose.LOCATION,
                   RecipientKind.THIRD_PARTY)
    c.record_contact_outcome(ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT, third_party=True,
        address=neighbour), first)
    assert c.state.stage.value == "REMINDER", "a third party never negotiates the debt"
    nine_days = first + timedelta(days=9)
    assert ask(nine_days) is Verdict.BLOCKED, "15 USC 1692b(3): a third party once"
    entries = c.record_contact_outcome(ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.BORROWER_REPLIED, actor=AGENT,
        third_party=True, address=neighbour, recontact_invited=True), nine_days)
    assert c.state.contacting.standing.recontact_invited == [f"third_party:{neighbour}"]
    assert events(entries, "contact_outcome")[0].details["recontact_invited"] is True
    # they called us: a conversation, so the next call waits the 7 days after it
    later = c.decide_contact(Channel.VOICE, neighbour, nine_days, Purpose.LOCATION,
                             RecipientKind.THIRD_PARTY, discloses_debt=False)
    assert later.verdict is Verdict.DEFERRED and later.code == "after_conversation"
    assert later.until is not None and ask(later.until) is Verdict.ALLOWED


def test_outcome_and_contact_requests_say_who_clearly() -> None:
    with pytest.raises(ValidationError) as err:
        ContactOutcomeReport(channel=Channel.VOICE, result=ContactResult.REACHED,
                             actor=AGENT, third_party=True,
                             recipient_kind=RecipientKind.GUARANTOR)
    assert "third_party contradicts recipient_kind guarantor" in format_validation_error(
        err.value)
    with pytest.raises(ValidationError, match="the debtor is always one person"):
        ContactOutcomeReport(channel=Channel.VOICE, result=ContactResult.REACHED,
                             actor=AGENT, person="Maria")
    with pytest.raises(ValidationError, match="guarantor's outcome needs their address"):
        guarantor_report(ContactResult.REACHED)
    with pytest.raises(ValidationError, match="recontact_invited is about a third party"):
        guarantor_report(ContactResult.REACHED, person="G-1", recontact_invited=True)
    derived = ContactOutcomeReport(channel=Channel.SMS, result=ContactResult.NO_ANSWER,
                                   actor=AGENT, recipient_kind=RecipientKind.THIRD_PARTY,
                                   address="+1")
    assert derived.third_party and derived.kind is RecipientKind.THIRD_PARTY
    assert ContactOutcomeReport(channel=Channel.SMS, result=ContactResult.NO_ANSWER,
                                actor=AGENT).recipient_kind is RecipientKind.DEBTOR
    with pytest.raises(ValidationError, match="needs their address"):
        ContactRequest(channel=Channel.VOICE, actor=AGENT,
                       recipient_kind=RecipientKind.GUARANTOR)


# ------------------------------------------------------------------ moratoria
def test_a_second_breathing_space_within_a_year_is_honoured_with_a_warning() -> None:
    c = gb()
    first = local(LONDON, 2026, 12, 1, 10, 0)
    start = HoldRequest(action="start", kind=HoldKind.BREATHING_SPACE, actor=AGENT,
                        reference="DRS-1")
    opened = change_hold(c, start, first)
    assert not events(opened, "breathing_space_repeat")
    assert not [t for t in c.state.work.tasks if t.kind is TaskKind.REVIEW_MORATORIUM]

    assert events(c.sync_pause(first + timedelta(days=60)), "collection_resumed"), \
        "the first ends after its 60 days (the workflow resumes then)"
    second = first + timedelta(days=200)
    assert c.freeze_reason(second) is None
    assert hold_problem(c, start, second) is None, "never refused: the adviser registered it"
    entries = change_hold(c, start.model_copy(update={"reference": "DRS-2"}), second)
    hold = c.state.contacting.standing.holds[-1]
    assert (hold.start, hold.end) == (second, second + timedelta(days=60))
    frozen = c.freeze_reason(second + timedelta(days=59))
    assert frozen is not None and frozen.code == "hold"
    warning = events(entries, "breathing_space_repeat")
    assert len(warning) == 1 and datetime.fromisoformat(
        warning[0].details["earlier_start"]) == first
    assert "reg 17" in warning[0].details["detail"]
    assert events(entries, "collection_frozen")
    task = next(t for t in c.state.work.tasks if t.kind is TaskKind.REVIEW_MORATORIUM)
    assert task.assignee == c.policy.tasks.supervisor_queue
    assert any(isinstance(e, TaskRecorded) and e.task.task_id == task.task_id
               for e in entries)

    done = TaskCompletion(task_id=task.task_id, outcome="review_requested", actor=AGENT)
    assert task_problem(c, done) == "only a supervisor may complete a review_moratorium task"
    complete_task(c, done.model_copy(update={"actor": SUPERVISOR}), second)
    assert task.outcome == "review_requested"
    assert c.freeze_reason(second + timedelta(days=1)) is not None, \
        "asking for a review does not lift the moratorium"


def test_a_crisis_moratorium_runs_thirty_days_after_the_treatment_ends() -> None:
    c = gb()
    start = local(LONDON, 2026, 12, 1, 10, 0)
    crisis = HoldRequest(action="start", kind=HoldKind.MENTAL_HEALTH_CRISIS, actor=AGENT)
    assert "it takes no days" in (hold_problem(c, crisis.model_copy(update={"days": 30}),
                                               start) or "")
    change_hold(c, crisis, start)
    assert c.state.contacting.standing.holds[0].end is None, "as long as the crisis treatment lasts"

    treated = start + timedelta(days=45)
    end = crisis.model_copy(update={"action": "end"})
    entries = change_hold(c, end, treated)
    assert c.state.contacting.standing.holds[0].end == treated + timedelta(days=30)
    record = events(entries, "crisis_treatment_ended")
    assert record and datetime.fromisoformat(record[0].details["end"]) == \
        treated + timedelta(days=30)
    assert not events(entries, "collection_resumed")
    assert c.freeze_reason(treated + timedelta(days=29, hours=23)) is not None
    assert c.freeze_reason(treated + timedelta(days=30)) is None

    problem = hold_problem(c, end, treated + timedelta(days=1))
    assert problem is not None and "already ended" in problem and "30 days" in problem
    with pytest.raises(ValueError, match="already ended"):
        change_hold(c, end, treated + timedelta(days=1))

    elsewhere = us()  # no run-on in the US pack: ending it ends it
    now = local(NEW_YORK, 2026, 12, 1, 10, 0)
    change_hold(elsewhere, crisis, now)
    change_hold(elsewhere, end, now + timedelta(days=3))
    assert elsewhere.state.contacting.standing.holds[0].end == now + timedelta(days=3)


@pytest.mark.parametrize("build", [us, gb], ids=["US", "GB"])
def test_mental_capacity_suspends_recovery_until_ended_everywhere(build) -> None:  # type: ignore[no-untyped-def]
    c = build()
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    capacity = HoldRequest(action="start", kind=HoldKind.MENTAL_CAPACITY, actor=AGENT,
                           note="daughter says he may not understand the letters")
    assert hold_problem(c, capacity, now) is None
    entries = change_hold(c, capacity, now)
    assert c.state.contacting.standing.holds[0].end is None
    assert events(entries, "collection_frozen")
    far = now + timedelta(days=300)
    frozen = c.freeze_reason(far)
    assert frozen is not None and frozen.code == "hold" and "mental capacity" in frozen.detail
    address = c.loan.borrower.phones[0]
    assert c.decide_contact(Channel.SMS, address, far).verdict is Verdict.BLOCKED
    assert hold_problem(c, capacity, far) == "a mental capacity hold is already active"
    resumed = change_hold(c, capacity.model_copy(update={"action": "end"}), far)
    assert events(resumed, "collection_resumed") and c.freeze_reason(far) is None
    with pytest.raises(ValidationError, match="mental capacity hold lasts until it is "
                                              "ended; it takes no days"):
        HoldRequest.model_validate({**capacity.model_dump(), "days": 5})


# ------------------------------------------------------------------ preferences
def test_esign_consent_workplace_ban_and_employer_email_are_recorded_and_honoured() -> None:
    c = us()
    at = local(NEW_YORK, 2026, 12, 1, 11, 0)
    email = c.loan.borrower.email or ""

    def notice() -> Verdict:
        return c.decide_contact(Channel.EMAIL, email, at, Purpose.VALIDATION_NOTICE).verdict

    assert c.decide_contact(Channel.EMAIL, email, at, Purpose.VALIDATION_NOTICE).code == \
        "esign_consent"
    assert c.decide_contact(Channel.VOICE, DEBTOR_PHONE, at, at_workplace=True).allowed
    assert c.decide_contact(Channel.EMAIL, EMPLOYER_EMAIL, at).allowed

    entries = change_preferences(c, PreferenceChange(
        esign_consent=True, workplace_contact_prohibited=True,
        employer_provided=[EMPLOYER_EMAIL], actor=AGENT, note="told us on the phone"),
        at - timedelta(minutes=5))
    assert [e.event for e in events(entries)] == [
        "esign_consent", "workplace_contact_prohibited", "employer_provided_address"]
    assert events(entries)[2].details["address"] == EMPLOYER_EMAIL
    st = c.state.contacting.standing
    assert st.esign_consent_at and st.workplace_contact_prohibited_at
    assert st.employer_provided == [EMPLOYER_EMAIL]

    assert notice() is Verdict.ALLOWED
    at_work = c.decide_contact(Channel.VOICE, DEBTOR_PHONE, at, at_workplace=True)
    assert at_work.verdict is Verdict.BLOCKED and at_work.code == "workplace"
    assert c.decide_contact(Channel.VOICE, DEBTOR_PHONE, at).allowed, "only at work"
    to_employer = c.decide_contact(Channel.EMAIL, EMPLOYER_EMAIL, at)
    assert to_employer.verdict is Verdict.BLOCKED and to_employer.code == "employer_email"

    again = change_preferences(c, PreferenceChange(
        esign_consent=True, employer_provided=[EMPLOYER_EMAIL], actor=AGENT), at)
    assert again == [], "facts already on record are not recorded twice"
    with pytest.raises(ValidationError, match="the change is empty"):
        PreferenceChange(actor=AGENT)


# ------------------------------------------------------------------ disputes
def test_us_law_freezes_on_a_written_dispute_within_the_validation_period_only() -> None:
    sent = local(NEW_YORK, 2026, 12, 1, 10, 0)  # the validation notice goes out

    def disputed(written: bool, after: timedelta, policy: Policy = LAW) -> Collection:
        c = us(policy)
        c.contact_made(Channel.LETTER, c.loan.borrower.address or "-", sent,
                       Purpose.VALIDATION_NOTICE)
        entries = change_dispute(c, DisputeChange(action="opened", actor=AGENT,
                                                  reason="not my loan", written=written),
                                 sent + after)
        assert events(entries, "dispute_opened")[0].details["written"] is written
        assert c.state.contacting.standing.dispute_written is written
        return c

    oral = disputed(False, timedelta(days=10))
    at = sent + timedelta(days=10, hours=1)
    assert oral.freeze_reason(at) is None
    assert oral.decide_contact(Channel.VOICE, DEBTOR_PHONE, at).allowed

    written = disputed(True, timedelta(days=10))
    frozen = written.freeze_reason(at)
    assert frozen is not None and frozen.code == "dispute" and "1006.38" in frozen.rule
    assert written.decide_contact(Channel.VOICE, DEBTOR_PHONE, at).code == "dispute"

    late = disputed(True, timedelta(days=60))  # after the validation period
    assert late.freeze_reason(sent + timedelta(days=60, hours=1)) is None

    ours = LAW.model_copy(update={"compliance": {
        "US": {"dispute_freezes_only_written_in_validation_period": False}}})
    assert disputed(False, timedelta(days=10), ours).freeze_reason(at) is not None, \
        "a policy may freeze on any dispute - explicitly"
    with pytest.raises(ValidationError, match="how a dispute was opened"):
        DisputeChange(action="verified", actor=AGENT, reason="sent", written=True)


# ------------------------------------------------------------------ CLI
def test_cli_refuses_unclear_requests_with_a_sentence_before_calling_anyone() -> None:
    runner = CliRunner()
    cases = [
        (["may-contact", "L-1", "--agent", "a-1", "--channel", "voice", "--guarantor"],
         "needs their address"),
        (["may-contact", "L-1", "--agent", "a-1", "--channel", "voice", "--guarantor",
          "--third-party", "--address", "+1"], "exclude each other"),
        (["outcome", "L-1", "--channel", "voice", "--result", "reached", "--agent", "a-1",
          "--recontact-invited"], "recontact_invited is about a third party"),
        (["hold", "L-1", "--agent", "a-1", "--kind", "mental_capacity", "--days", "5"],
         "it takes no days"),
        (["dispute", "L-1", "--agent", "a-1", "--verified", "--reason", "sent",
          "--written"], "how a dispute was opened"),
        (["preferences", "L-1", "--agent", "a-1"], "the change is empty"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)


# ------------------------------------------------------------------ the audit
async def test_audit_counts_a_guarantors_calls_and_conversations_as_theirs(
        harness: Harness) -> None:
    h = harness
    await advance_to_local(h, NEW_YORK, time(11, 0))
    loan = make_loan(await h.env.get_current_time(), dpd=3, tz="America/New_York",
                     jurisdiction="US-NY", currency="USD", language="en",
                     phones=[DEBTOR_PHONE])
    await h.client.start(loan, LAW)
    await h.settle(loan.loan_id)
    guarantor = {"recipient_kind": RecipientKind.GUARANTOR, "person": "G-1"}
    asked = await h.client.request_contact(loan.loan_id, ContactRequest(
        channel=Channel.VOICE, actor=AGENT, address=GUARANTOR_PHONE, **guarantor))  # type: ignore[arg-type]
    assert asked.allowed
    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT,
        address=GUARANTOR_PHONE, **guarantor))  # type: ignore[arg-type]
    await h.env.sleep(timedelta(days=1))
    await advance_to_local(h, NEW_YORK, time(12, 0))
    debtor = await h.client.request_contact(loan.loan_id, ContactRequest(
        channel=Channel.VOICE, actor=AGENT))
    assert debtor.allowed, "the guarantor's conversation is not the debtor's"
    deferred = await h.client.request_contact(loan.loan_id, ContactRequest(
        channel=Channel.VOICE, actor=AGENT, address=GUARANTOR_WORK, **guarantor))  # type: ignore[arg-type]
    assert deferred.verdict is Verdict.DEFERRED and deferred.code == "after_conversation"
    await h.settle(loan.loan_id)
    events_ = await h.ledger.rows(t.audit_events, loan_id=loan.loan_id)
    outcome = next(e for e in events_ if e["kind"] == "contact_outcome")
    assert outcome["data"]["details"]["recipient_kind"] == "guarantor"
    report = await run_audit(h.ledger)
    assert report.clean, report.violations

    # an agent calls the guarantor on another number without asking, and reports it
    await h.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.NO_ANSWER, actor=AGENT,
        address=GUARANTOR_WORK, **guarantor))  # type: ignore[arg-type]
    # ... and a contact row logged for the guarantor that the engine never allowed
    await h.settle(loan.loan_id)
    case_id = outcome["case_id"]
    now = await h.env.get_current_time()
    await h.ledger.record_entries(RecordEntries(
        case_id=case_id, workflow_id=loan.workflow_id, loan_id=loan.loan_id,
        entries=[ContactLogged(
            key="contact-by-person:planted", occurred_at=now + timedelta(minutes=1),
            actor=Actor(kind=ActorKind.AGENT, id="agent-9"), stage="REMINDER",
            step="planted-call", channel="voice", recipient=GUARANTOR_PHONE,
            recipient_kind="guarantor", purpose="collection", person="G-1")]))
    report = await run_audit(h.ledger)
    found = {(v.step, v.code, v.recipient) for v in report.violations}
    assert found == {("reported by agent-7", "after_conversation", GUARANTOR_WORK),
                     ("planted-call", "after_conversation", GUARANTOR_PHONE)}


def test_the_audit_rebuilds_from_the_ledger_the_standing_the_collection_built() -> None:
    c = gb()
    now = local(LONDON, 2026, 12, 1, 10, 0)
    entries = change_preferences(c, PreferenceChange(
        esign_consent=True, workplace_contact_prohibited=True,
        employer_provided=[EMPLOYER_EMAIL], opt_out=[Channel.SMS], actor=AGENT), now)
    entries += change_dispute(c, DisputeChange(action="opened", actor=AGENT, reason="r",
                                               written=True), now + timedelta(hours=1))
    crisis = HoldRequest(action="start", kind=HoldKind.MENTAL_HEALTH_CRISIS, actor=AGENT)
    entries += change_hold(c, crisis, now + timedelta(days=1))
    entries += change_hold(c, crisis.model_copy(update={"action": "end"}),
                           now + timedelta(days=9))
    entries += change_hold(c, HoldRequest(action="start", kind=HoldKind.MENTAL_CAPACITY,
                                          actor=AGENT), now + timedelta(days=10))
    replayed = Standing()
    for e in entries:
        if isinstance(e, EventRecorded):
            _apply(replayed, e.event, e.occurred_at, e.model_dump(mode="json"))
    built = c.state.contacting.standing
    for field in ("esign_consent_at", "workplace_contact_prohibited_at", "employer_provided",
                  "opted_out", "dispute_opened_at", "dispute_written"):
        assert getattr(replayed, field) == getattr(built, field), field
    assert [(h.kind, h.start, h.end) for h in replayed.holds] == [
        (h.kind, h.start, h.end) for h in built.holds]
    assert replayed.holds[0].end == now + timedelta(days=39), "the crisis run-on, replayed"


# ------------------------------------------------------------------ review findings
def test_an_inbound_call_is_a_conversation_that_starts_the_quiet_period() -> None:
    c = us()
    monday = local(NEW_YORK, 2026, 11, 30, 14, 0)
    texted = c.record_contact_outcome(ContactOutcomeReport(
        channel=Channel.SMS, result=ContactResult.BORROWER_REPLIED, actor=AGENT), monday)
    assert c.state.contacting.contacts == [], "a text back is no telephone conversation"
    assert events(texted, "contact_outcome")
    c.record_contact_outcome(ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.BORROWER_REPLIED, actor=AGENT), monday)
    inbound = c.state.contacting.contacts[-1]
    assert (inbound.inbound, inbound.result, inbound.address, inbound.who) == (
        True, AttemptResult.ANSWERED, DEBTOR_PHONE, "debtor")
    tuesday = local(NEW_YORK, 2026, 12, 1, 18, 9)
    call = c.decide_contact(Channel.VOICE, DEBTOR_PHONE, tuesday)
    # 1006.14(b)(2)(i)(B): within 7 days after a telephone conversation, whoever called
    assert call.verdict is Verdict.DEFERRED and call.code == "after_conversation"
    assert call.until == local(NEW_YORK, 2026, 12, 7, 8, 0)


def test_a_third_partys_refusal_must_say_who_refused() -> None:
    with pytest.raises(ValidationError) as err:
        ContactOutcomeReport(channel=Channel.VOICE, result=ContactResult.REFUSED,
                             actor=AGENT, third_party=True)
    assert "a third party's refusal needs their address or person" in \
        format_validation_error(err.value)
    with pytest.raises(ValidationError, match="refusal needs their address or person"):
        ContactOutcomeReport(channel=Channel.VOICE, result=ContactResult.REFUSED,
                             actor=AGENT, recipient_kind=RecipientKind.THIRD_PARTY,
                             address=" ")
    for who in ({"address": "+12125550111"}, {"person": "neighbour"}):
        ContactOutcomeReport(channel=Channel.VOICE, result=ContactResult.REFUSED,
                             actor=AGENT, third_party=True, **who)  # type: ignore[arg-type]
    ContactOutcomeReport(channel=Channel.VOICE, result=ContactResult.NO_ANSWER,
                         actor=AGENT, third_party=True)  # nobody to leave alone: fine


def test_person_keys_never_merge_the_debtor_with_someone_named_debtor() -> None:
    assert person_of(RecipientKind.DEBTOR, DEBTOR_PHONE, "Maria") == "debtor"
    assert person_of(RecipientKind.GUARANTOR, GUARANTOR_PHONE, "debtor") == "guarantor:debtor"
    assert person_of(RecipientKind.GUARANTOR, GUARANTOR_PHONE) == f"guarantor:{GUARANTOR_PHONE}"
    assert person_of(RecipientKind.THIRD_PARTY, "+1", "G-1") != \
        person_of(RecipientKind.GUARANTOR, "+1", "G-1")

    c = us()
    monday = local(NEW_YORK, 2026, 11, 30, 14, 0)
    c.contact_made(Channel.VOICE, GUARANTOR_PHONE, monday,
                   recipient_kind=RecipientKind.GUARANTOR, person="debtor")
    c.record_contact_outcome(guarantor_report(ContactResult.REACHED, person="debtor"),
                             monday)
    assert c.state.contacting.contacts[-1].who == "guarantor:debtor"
    tuesday = local(NEW_YORK, 2026, 12, 1, 12, 0)
    assert c.decide_contact(Channel.VOICE, DEBTOR_PHONE, tuesday).allowed, \
        "a guarantor named 'debtor' is not the debtor"
    assert c.decide_contact(Channel.VOICE, GUARANTOR_WORK, tuesday,
                            recipient_kind=RecipientKind.GUARANTOR,
                            person="debtor").code == "after_conversation"

    # a named third party who refused is left alone on any number, under their own key
    for _ in range(3):  # the debtor cannot be reached
        c.record_contact_outcome(ContactOutcomeReport(
            channel=Channel.VOICE, result=ContactResult.NO_ANSWER, actor=AGENT), tuesday)
    c.record_contact_outcome(ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REFUSED, actor=AGENT, third_party=True,
        address="+12125550111", person="Bob"), tuesday)
    assert "third_party:Bob" in c.state.contacting.standing.refused_third_parties
    again = c.decide_contact(Channel.VOICE, "+12125550122", tuesday + timedelta(days=9),
                             Purpose.LOCATION, RecipientKind.THIRD_PARTY,
                             discloses_debt=False, person="Bob")
    assert again.verdict is Verdict.BLOCKED and again.code == "third_party_refused"


def test_the_collection_context_knows_other_zones_and_the_last_payment() -> None:
    now = local(NEW_YORK, 2026, 11, 28, 10, 0)
    loan = make_loan(now, dpd=10, tz="America/New_York", jurisdiction="US-NY",
                     currency="USD", language="en", phones=[DEBTOR_PHONE],
                     other_timezones=["America/Los_Angeles"]).model_copy(
        update={"last_payment_date": date(2026, 10, 1)})
    c = Collection.begin(loan, LAW, now, case_id="c-ctx")[0]
    ctx = c.context()
    assert ctx.other_zones == ("America/Los_Angeles",)
    assert ctx.zones == ("America/New_York", "America/Los_Angeles")
    assert (ctx.due_date, ctx.last_payment_on) == (loan.due_date, date(2026, 10, 1))
    assert c.compliance_record()["last_payment_date"] == "2026-10-01"
    # paid at 03:00 UTC on Dec 2: still Dec 1 for the borrower in New York
    c.apply_payment(payment("10.00", currency="USD",
                            at=datetime(2026, 12, 2, 3, 0, tzinfo=UTC)), now)
    assert c.context().last_payment_on == date(2026, 12, 1)
    early = Collection.begin(loan.model_copy(update={"last_payment_date": None}), LAW, now,
                             case_id="c-ctx-2")[0]
    assert early.context().last_payment_on is None
    assert "last_payment_date" not in early.compliance_record()


# ------------------------------------------------------------------ the audit, by ledger
async def _open(ledger: Ledger, c: Collection) -> None:
    """Hand the collection's loan over to the ledger as the workflow does (pack included)."""
    await ledger.open_case(OpenLoan(
        case_id=c.state.case_id, workflow_id=c.loan.workflow_id, loan=c.loan,
        policy=c.policy.label, opened_at=c.state.opened_at,
        compliance={**c.compliance_record(), "pack": c.pack.model_dump(mode="json")}))


async def _record(ledger: Ledger, c: Collection, *entries: LedgerEntry) -> None:
    await ledger.record_entries(RecordEntries(case_id=c.state.case_id,
                                              workflow_id=c.loan.workflow_id,
                                              loan_id=c.loan.loan_id, entries=list(entries)))


def _call(at: datetime, key: str, channel: Channel = Channel.VOICE,
          recipient: str = DEBTOR_PHONE, purpose: Purpose = Purpose.COLLECTION
          ) -> ContactLogged:
    return ContactLogged(key=f"contact-by-person:{key}", occurred_at=at, actor=AGENT,
                         stage="REMINDER", step=key, channel=channel, recipient=recipient,
                         recipient_kind="debtor", purpose=purpose)


def _us_case(case_id: str, policy: Policy = LAW, dpd: int = 10,
             paid: date | None = None, **borrower: object) -> Collection:
    now = local(NEW_YORK, 2026, 11, 28, 10, 0)
    loan = make_loan(now, dpd=dpd, tz="America/New_York", jurisdiction="US-NY",
                     currency="USD", language="en", phones=[DEBTOR_PHONE],
                     **borrower).model_copy(update={"last_payment_date": paid})
    return Collection.begin(loan, policy, now, case_id=case_id)[0]


async def test_the_audit_counts_an_inbound_call_as_a_conversation_never_as_ours(
        ledger: Ledger) -> None:
    c = _us_case("c-inbound")
    await _open(ledger, c)
    late = local(NEW_YORK, 2026, 11, 30, 23, 30)  # they may call us whenever they like
    reply = c.record_contact_outcome(ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.BORROWER_REPLIED, actor=AGENT), late)
    await _record(ledger, c, *reply,
                  _call(local(NEW_YORK, 2026, 12, 1, 12, 0), "call-next-day"))
    report = await run_audit(ledger)
    assert [(v.step, v.code) for v in report.violations] == [
        ("call-next-day", "after_conversation")]
    assert report.contacts_checked == 1, "the inbound call is not checked as ours"


async def test_the_audit_knows_the_due_date_other_zones_and_last_payment(
        ledger: Ledger) -> None:
    at = local(NEW_YORK, 2026, 12, 1, 11, 0)
    barred = _us_case("c-barred", dpd=4 * 365)  # NY: 3 years from the due date
    early = _us_case("c-zones", other_timezones=["America/Los_Angeles"])
    from_payment = LAW.model_copy(update={"compliance": {
        "US": {"limitation_starts": "last_payment"}}})
    paid_before = _us_case("c-paid-before", from_payment, dpd=4 * 365,
                           paid=date(2026, 1, 15))
    paid_during = _us_case("c-paid-during", from_payment, dpd=4 * 365)
    for c in (barred, early, paid_before, paid_during):
        await _open(ledger, c)
    letter = {"channel": Channel.LETTER, "recipient": "1 Nanjing Road, Shanghai",
              "purpose": Purpose.DEMAND}
    await _record(ledger, barred, _call(at, "demand", **letter))  # type: ignore[arg-type]
    await _record(ledger, early, _call(local(NEW_YORK, 2026, 12, 1, 8, 30), "early-call"))
    await _record(ledger, paid_before, _call(at, "demand", **letter))  # type: ignore[arg-type]
    paid = paid_during.apply_payment(payment("10.00", currency="USD", at=at), at)
    await _record(ledger, paid_during,
                  _call(at - timedelta(hours=1), "demand-before", **letter),  # type: ignore[arg-type]
                  *paid, _call(at + timedelta(hours=1), "demand-after", **letter))  # type: ignore[arg-type]
    report = await run_audit(ledger)
    found = {(v.case_id, v.step, v.code) for v in report.violations}
    assert found == {("c-barred", "demand", "time_barred"),
                     # 08:30 in New York is 05:30 in Los Angeles: the law's and the
                     # policy's hours both hold in every zone the borrower may be in
                     ("c-zones", "early-call", "hours"),
                     ("c-zones", "early-call", "policy_hours"),
                     ("c-paid-during", "demand-before", "time_barred")}

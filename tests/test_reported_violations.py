"""An agent who reports a contact that broke a rule is told at once, with the rule, and the
report is recorded as a violation to review - not accepted silently and found later by the
audit. The contact is recorded all the same: it happened, and the limits count it.

Pure domain tests first, then the client, the CLI and the API on the time-skipping
server (a call at 02:00 Asia/Shanghai for a CN loan, and a lawful one at 10:00).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.audit import run_audit
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.case.commands import CancelRequest, ContactOutcomeReport, ContactResult
from duecourse.domain.compliance import AttemptResult, Verdict
from duecourse.domain.compliance.requests import ContactRequest
from duecourse.domain.entries import EventRecorded, TaskRecorded
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel
from duecourse.domain.work import tasks
from duecourse.domain.work.completion import complete_task, task_problem
from duecourse.domain.work.queue import TaskCompletion, TaskKind
from duecourse.policies import load_policy
from duecourse.runtime import WORKFLOWS, build_worker, sandbox_runner
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.conftest import Harness, TrackingClient, advance_to_local, settings_for_tests
from tests.factories import AGENT, SUPERVISOR, make_loan
from tests.support.cli import run_cli
from tests.support.sealing import sealed

STANDARD = load_policy("standard").model_copy(update={"segments": {}})
SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE, NAME, EMAIL = "+8613800138000", "Li Wei", "li.wei@example.com"  # make_loan's
QUIET_HOURS = "22:00-08:00"  # the CN pack's rule: GB/T 45251-2025


def at_local(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 10, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def cn_collection(now: datetime) -> Collection:
    return Collection.begin(make_loan(now, dpd=3), STANDARD, now, case_id="case-cn")[0]


def called(result: ContactResult = ContactResult.REACHED, **kwargs: Any) -> ContactOutcomeReport:
    return ContactOutcomeReport(channel=Channel.VOICE, result=result, actor=AGENT, **kwargs)


def assert_no_pii(*texts: object) -> None:
    for text in texts:
        for secret in (PHONE, NAME, EMAIL):
            assert secret not in str(text), (secret, text)


# ------------------------------------------------------------------ the domain, pure
def test_a_call_reported_at_two_in_the_morning_is_judged_and_reviewed() -> None:
    night = at_local(2)
    c = cn_collection(night)
    report = called(note="called late")
    before = c.state.model_dump()
    check = c.contact_check(report, night)
    assert {v.code for v in check.violations} == {"hours", "policy_hours"}
    assert any(QUIET_HOURS in v.rule for v in check.violations)
    assert check.local_time == "2026-03-10 02:00 Asia/Shanghai"
    assert c.state.model_dump() == before, "the check changes nothing"

    entries = c.record_contact_outcome(report, night)
    task, reviewed = tasks.review_reported_violation(c, report, check, night)
    # the contact happened: it is in the history the limits count
    assert [(e.channel, e.result, e.address) for e in c.state.contacting.contacts] == [
        (Channel.VOICE, AttemptResult.ANSWERED, PHONE)]
    assert task is not None and task.kind is TaskKind.REVIEW_VIOLATION
    assert task.assignee == STANDARD.tasks.supervisor_queue
    assert QUIET_HOURS in task.note and "agent-7" in task.note
    event = next(e for e in reviewed if isinstance(e, EventRecorded))
    assert event.event == "contact_violation_reported" and event.actor == AGENT
    assert event.details["codes"] == ["hours", "policy_hours"]
    assert event.details["task"] == task.task_id
    assert any(QUIET_HOURS in r for r in event.details["rules"])
    assert [e.task.task_id for e in reviewed if isinstance(e, TaskRecorded)] == [task.task_id]
    assert_no_pii(event.details, task.note, task.subject, check.summary(report))
    assert [e.event for e in entries if isinstance(e, EventRecorded)] == ["contact_outcome"]

    # only a supervisor closes the review
    agent_done = TaskCompletion(task_id=task.task_id, outcome="confirmed", actor=AGENT)
    assert task_problem(c, agent_done) is not None
    complete_task(c, TaskCompletion(task_id=task.task_id, outcome="confirmed",
                                    actor=SUPERVISOR), night + timedelta(hours=9))
    assert task.outcome == "confirmed"


def test_the_check_judges_what_the_audit_judges_against_the_history_before_it() -> None:
    c = cn_collection(at_local(2))
    for minute in range(3):  # three conversations: the CN daily limit, each at night
        now = at_local(2, minute)
        check = c.contact_check(called(), now)
        assert {v.code for v in check.violations} == {"hours", "policy_hours"}, minute
        c.record_contact_outcome(called(), now)
    fourth = c.contact_check(called(), at_local(10))
    assert [v.code for v in fourth.violations] == ["answered_calls"], \
        "the three reported calls count towards the limit"
    assert "3 effective calls a day" in fourth.violations[0].rule


def test_a_reported_visit_is_judged_by_how_many_went() -> None:
    """CN home visits need two collectors (GB/T 45251-2025): a report that says two went
    breaks nothing; one that does not say so is judged as one collector."""
    morning = at_local(10)
    c = cn_collection(morning)
    visit = ContactOutcomeReport(channel=Channel.VISIT, result=ContactResult.REACHED,
                                 actor=AGENT)
    alone = {v.code for v in c.contact_check(visit, morning).violations}
    assert "visit_collectors" in alone
    pair = visit.model_copy(update={"collectors": 2})
    assert "visit_collectors" not in {v.code for v in c.contact_check(pair, morning).violations}
    entries = c.record_contact_outcome(pair, morning)
    assert any(getattr(e, "details", {}).get("collectors") == 2 for e in entries)


def test_lawful_completed_and_inbound_reports_break_nothing() -> None:
    morning = at_local(10)
    c = cn_collection(morning)
    assert c.contact_check(called(ContactResult.NO_ANSWER), morning).violations == []
    asked = c.decide_contact(Channel.VOICE, PHONE, morning)
    assert asked.allowed
    c.contact_made(Channel.VOICE, PHONE, morning)
    # the call it completes was cleared when asked: reported late at night, it is still
    # the completion of that call, not a new contact
    assert c.contact_check(called(), at_local(23)).violations == []
    reply = ContactOutcomeReport(channel=Channel.SMS, result=ContactResult.BORROWER_REPLIED,
                                 actor=AGENT)
    assert c.contact_check(reply, at_local(23, 30)).violations == [], "they reached us"
    inbound = called(ContactResult.BORROWER_REPLIED)
    assert c.contact_check(inbound, at_local(23, 40)).violations == [], "they called us"


def test_a_review_on_a_closing_loan_records_the_violation_without_a_task() -> None:
    night = at_local(2)
    c = cn_collection(night)
    check = c.contact_check(called(), night)
    c.cancel(CancelRequest(reason="restructured elsewhere"), night)
    assert c.state.is_closed
    task, reviewed = tasks.review_reported_violation(c, called(), check, night)
    assert task is None and [e.event for e in reviewed if isinstance(e, EventRecorded)] == [
        "contact_violation_reported"]
    assert c.state.work.tasks == []


# ------------------------------------------------------------------ client, CLI and API
async def start_cn(h: Harness) -> LoanIntake:
    loan = make_loan(await h.env.get_current_time(), dpd=3)
    await h.client.start(loan, STANDARD)
    await h.settle(loan.loan_id)
    return loan


async def api_outcome(h: Harness, loan: LoanIntake, body: dict[str, Any]) -> httpx.Response:
    keys = KeyStore(h.ledger.engine)
    token = (await keys.create("agent-api", "agent"))[1]
    settings = settings_for_tests()
    app = create_app(settings, Services(client=h.client, ledger=h.ledger, keys=keys,
                                        settings=settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        return await http.post(f"/v1/loans/{loan.loan_id}/contact-outcomes", json=body,
                               headers={"Authorization": f"Bearer {token}"})


def outcome_args(loan: LoanIntake, result: str) -> list[str]:
    return ["outcome", loan.loan_id, "--channel", "voice", "--result", result,
            "--agent", "agent-7"]


async def test_a_call_reported_at_02_00_shanghai_is_told_and_recorded_for_review(
        harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(2, 0))
    loan = await start_cn(h)  # its first workflow task runs now, at 02:00

    check = await h.client.record_contact_outcome(
        loan.loan_id, called(note="called at night"), at=await h.env.get_current_time())
    assert check is not None and {v.code for v in check.violations} == {"hours",
                                                                          "policy_hours"}
    assert any(QUIET_HOURS in v.rule for v in check.violations)
    assert check.local_time.endswith("02:00 Asia/Shanghai") and check.review_task

    code, out, err = await run_cli(h, *outcome_args(loan, "reached"))
    assert code == 0, (out, err)
    assert "Recorded reached via voice" in out and "broke" not in out
    assert "This contact broke 2 rules" in err and QUIET_HOURS in err, err
    assert "outside lawful contact hours" in err and "policy contact hours" in err
    assert "It is recorded as a violation to review: task " in err

    answer = await api_outcome(h, loan, {"channel": "voice", "result": "reached"})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "accepted" and body["checked"] is True
    assert {v["code"] for v in body["violations"]} == {"hours", "policy_hours"}
    assert any(QUIET_HOURS in v["rule"] for v in body["violations"])
    assert body["review_task"] and body["review_task"] in body["detail"]
    assert "recorded as a violation to review" in body["detail"]

    # the ledger: three outcomes, each a violation to review, with its task and alert
    await h.settle(loan.loan_id)
    events = await h.rows(t.audit_events, loan_id=loan.loan_id)
    outcomes = [e for e in events if e["kind"] == "contact_outcome"]
    reported = [e for e in events if e["kind"] == "contact_violation_reported"]
    assert len(outcomes) == 3 and len(reported) == 3
    assert {tuple(e["data"]["details"]["codes"]) for e in reported} == {
        ("hours", "policy_hours")}
    reviews = await h.tasks(loan_id=loan.loan_id)
    reviews = [r for r in reviews if r["kind"] == "review_violation"]
    assert len(reviews) == 3 and {r["assignee"] for r in reviews} == {
        STANDARD.tasks.supervisor_queue}
    assert {e["data"]["details"]["task"] for e in reported} == {r["task_id"] for r in reviews}
    assert check.review_task in {r["task_id"] for r in reviews}
    assert body["review_task"] in {r["task_id"] for r in reviews}
    alerts = [a for a in await h.rows(t.ops_alerts, loan_id=loan.loan_id)
              if "Reported contact broke 2 rule(s)" in a["subject"]]
    assert len(alerts) == 3 and all(QUIET_HOURS in a["body"] for a in alerts)
    assert_no_pii(*(e["summary"] for e in reported), *(e["data"] for e in reported),
                  *(a["subject"] + a["body"] for a in alerts), *(r["note"] for r in reviews))

    # the same rules as the audit, which still finds each one
    audit = await run_audit(h.ledger)
    found = [v for v in audit.violations if v.loan_id == loan.loan_id]
    assert len(found) == 6 and {v.code for v in found} == {"hours", "policy_hours"}

    # the contacts are in the history: three conversations today reach the daily limit
    await advance_to_local(h, SHANGHAI, time(10, 0))
    asked = await h.client.request_contact(loan.loan_id, ContactRequest(
        channel=Channel.VOICE, actor=AGENT))
    assert asked.verdict is Verdict.DEFERRED and asked.code == "answered_calls"

    # and the run that did all this replays with today's code
    history = await h.client.handle(loan.loan_id).fetch_history()
    await Replayer(workflows=list(WORKFLOWS), data_converter=sealed(),
                   workflow_runner=sandbox_runner()).replay_workflow(history)


async def test_a_lawful_report_produces_no_warning_task_or_alert(harness: Harness) -> None:
    h = harness
    await advance_to_local(h, SHANGHAI, time(10, 0))
    loan = await start_cn(h)
    check = await h.client.record_contact_outcome(
        loan.loan_id, called(ContactResult.NO_ANSWER), at=await h.env.get_current_time())
    assert check is not None and check.violations == [] and check.review_task is None
    code, out, err = await run_cli(h, *outcome_args(loan, "no_answer"))
    assert code == 0 and "Recorded no_answer via voice" in out and "broke" not in out + err
    answer = await api_outcome(h, loan, {"channel": "voice", "result": "left_message"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["violations"] == [] and answer.json()["review_task"] is None

    await h.settle(loan.loan_id)
    events = await h.rows(t.audit_events, loan_id=loan.loan_id)
    assert len([e for e in events if e["kind"] == "contact_outcome"]) == 3
    assert not [e for e in events if e["kind"] == "contact_violation_reported"]
    assert not [r for r in await h.tasks(loan_id=loan.loan_id)
                if r["kind"] == "review_violation"]
    assert not [a for a in await h.rows(t.ops_alerts, loan_id=loan.loan_id)
                if "Reported contact" in a["subject"]]


async def test_a_report_no_worker_can_check_is_recorded_and_reviewed_when_one_runs(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """A signal needs no worker, a query does: with none to answer, the report is still
    accepted (unchecked, said so) and the loan reviews it when a worker runs it."""
    queue = f"tq-{uuid4().hex}"
    h = Harness(ts_env, TrackingClient(ts_env, queue), ledger, queue)
    await advance_to_local(h, SHANGHAI, time(2, 0))
    loan = make_loan(await ts_env.get_current_time(), dpd=3)
    await h.client.start(loan, STANDARD)
    assert await h.client.record_contact_outcome(loan.loan_id, called()) is None
    async with build_worker(ts_env.client, ledger, settings_for_tests(), queue):
        try:
            events = await h.rows(t.audit_events, loan_id=loan.loan_id)
            assert [e["data"]["details"]["codes"] for e in events
                    if e["kind"] == "contact_violation_reported"] == [["hours", "policy_hours"]]
            assert [r["kind"] for r in await h.tasks(loan_id=loan.loan_id)] == [
                "review_violation"]
        finally:
            await h.client.end_all()

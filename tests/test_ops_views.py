"""Ops views against real servers: what was sent and what the rules held back, the alerts
that need a person, and the portfolio from Temporal's visibility store.

One real dev server (with the search attributes), a real SQLite ledger and a worker serve
the module; loans run through the real workflows, and the CLI runs in-process through
typer's CliRunner pointed at them by the environment, as an operator would run it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo, available_timezones

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from duecourse import search_attributes as sa
from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.cli.app import app as cli_app
from duecourse.domain.agreements.terms import Assignment
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.compliance.requests import ContactRequest
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel
from duecourse.policies import load_policy
from duecourse.runtime import build_worker
from duecourse.store import Ledger, connect, migrate
from duecourse.store import tables as t
from duecourse.store.database import downgrade
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.contracts import OpsAlert
from duecourse.temporal.portfolio_query import LoanFilters, portfolio_rows
from tests.conftest import settings_for_tests, settle
from tests.factories import AGENT, SUPERVISOR, daytime_zone, make_loan
from tests.support.sealing import sealed
from tests.support.waiting import eventually

pytestmark = [pytest.mark.devserver, pytest.mark.timeout(120)]
TEMPORAL = Path(sys.executable).parent / "temporal"
STANDARD = load_policy("standard").model_copy(update={"segments": {}})
ROLES = ("platform", "agent", "supervisor", "ops")
WAIT = 30.0
"""Seconds to wait for a worker, a timer or visibility: a module of real loans is slow."""


@dataclass
class Stack:
    env: WorkflowEnvironment
    client: CollectionClient
    ledger: Ledger
    http: httpx.AsyncClient
    keys: dict[str, str]
    cli_env: dict[str, str]
    day: LoanIntake  # a borrower in office hours: its notices go out
    night: LoanIntake  # a borrower asleep: its first notice is deferred

    async def call(self, method: str, path: str, role: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(
            method, path, headers={"Authorization": f"Bearer {self.keys[role]}"}, **kwargs)

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """Run `duecourse ARGS` in a thread (each command runs its own event loop); the
        exit code, stdout and everything printed (stderr too)."""
        result = await asyncio.to_thread(CliRunner().invoke, cli_app, list(args),
                                         env=self.cli_env)
        return result.exit_code, _own(result.stdout), _own(result.output)

    async def settle(self, *loans: LoanIntake) -> None:
        """Wait until the loans' workflows are idle (their worker's log lines would land
        in the captured output of a command run meanwhile)."""
        for loan in loans:
            await settle(self.client.handle(loan.loan_id))


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def _own(text: str) -> str:
    """The command's output without the in-process worker's log lines."""
    return "\n".join(line for line in text.splitlines() if not LOG_LINE.match(line))


def night_zone(now: datetime) -> str:
    """A zone where `now` is in the small hours: contact there is deferred to morning."""
    for zone in sorted(available_timezones()):
        if zone.count("/") == 1 and 1 <= now.astimezone(ZoneInfo(zone)).hour < 5:
            return zone
    raise AssertionError(f"no zone at night at {now.isoformat()}")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("ops")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL), search_attributes=sa.ALL,
        data_converter=sealed())
    url = f"sqlite+aiosqlite:///{tmp / 'ledger.db'}"
    engine = connect(url)
    await migrate(engine)
    ledger, keys = Ledger(engine), KeyStore(engine)
    queue = f"ops-{uuid4().hex}"
    settings = settings_for_tests()
    client = CollectionClient(env.client, queue)
    tokens = {role: (await keys.create(f"{role}-1", role))[1] for role in ROLES}
    app = create_app(settings, Services(client=client, ledger=ledger, keys=keys,
                                        settings=settings))
    now = datetime.now(UTC)
    day = make_loan(now, dpd=3, tz=daytime_zone(now))
    night = make_loan(now, dpd=3, tz=night_zone(now))
    cli_env = {"TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
               "DUECOURSE_TASK_QUEUE": queue, "DUECOURSE_DATABASE_URL": url,
               "DUECOURSE_DATA_DIR": str(tmp / "data"), "COLUMNS": "250", "NO_COLOR": "1"}
    async with build_worker(env.client, ledger, settings, queue), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        for loan in (day, night):
            await client.start(loan, STANDARD)
        yield Stack(env, client, ledger, http, tokens, cli_env, day, night)
    await engine.dispose()
    await env.shutdown()


async def _rows(s: Stack, table: Any, **where: Any) -> list[dict[str, Any]]:
    return await s.ledger.rows(table, **where)


async def test_messages_show_what_was_sent_and_the_rule_that_decided(stack: Stack) -> None:
    s, day, night = stack, stack.day, stack.night

    async def sent_both() -> bool:
        rows = await _rows(s, t.contact_attempts, loan_id=day.loan_id, status="sent")
        return {r["channel"] for r in rows} >= {"sms", "email"}

    async def deferred() -> bool:
        return bool(await _rows(s, t.compliance_decisions, loan_id=night.loan_id,
                                verdict="deferred"))

    await eventually(sent_both, "the day loan's notices to go out", WAIT)
    await eventually(deferred, "the night loan's first notice to be deferred", WAIT)
    # an agent's visit the rules refuse, and a call they allow (logged as made by a person)
    refused = await s.client.request_contact(day.loan_id, ContactRequest(
        channel=Channel.VISIT, actor=AGENT, collectors=1))
    allowed = await s.client.request_contact(day.loan_id, ContactRequest(
        channel=Channel.VOICE, actor=AGENT))
    assert (refused.verdict, allowed.verdict) == ("blocked", "allowed")
    await s.settle(day, night)

    code, out, _ = await s.cli("messages", "--loan", day.loan_id, "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert {r["loan_id"] for r in rows} == {day.loan_id}
    by_status: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_status.setdefault(r["status"], []).append(r)
    outbox = {o["idempotency_key"]: o for o in await _rows(s, t.outbox_messages)}
    sms = next(r for r in by_status["sent"] if r["channel"] == "sms")
    assert sms["template"] == "overdue_notice" and sms["step"] == "notice-sms"
    assert sms["verdict"] == "allowed" and sms["recipient_kind"] == "debtor"
    assert sms["body"] == outbox[sms["key"]]["body"] and day.loan_id in sms["body"]
    assert sms["message_id"].startswith("outbox-") and sms["until"] is not None
    visit = by_status["blocked"][0]
    assert visit["channel"] == "visit" and visit["code"] == "visit_collectors"
    assert "GB/T 45251-2025" in visit["reason"] and "at least 2 collectors" in visit["reason"]
    assert visit["body"] is None and visit["decided_by"] == "agent:agent-7"
    call = by_status["made_by_person"][0]
    assert call["verdict"] == "allowed" and call["decided_by"] == "agent:agent-7"
    assert call["body"] is None

    code, out, _ = await s.cli("messages", "--loan", night.loan_id, "--json")
    held = [r for r in json.loads(out) if r["status"] == "deferred"]
    assert held and held[0]["body"] is None and held[0]["until"] is not None
    assert held[0]["code"] and held[0]["rule"]
    until = datetime.fromisoformat(held[0]["until"]).astimezone(
        ZoneInfo(night.borrower.timezone))
    assert until.hour >= 8, "deferred to the borrower's morning"

    code, out, _ = await s.cli("messages", "--channel", "EMAIL", "--json")
    emails = json.loads(out)
    assert emails and {r["channel"] for r in emails} == {"email"}
    assert day.loan_id in {r["loan_id"] for r in emails}
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, out, _ = await s.cli("messages", "--since", later, "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = await s.cli("messages", "--since", "1h", "--loan", day.loan_id)
    assert code == 0 and "visit_collectors" in out and "overdue_notice / notice-sms" in out
    assert "400-800-1234" in out, "the table shows the body as sent"
    code, _, said = await s.cli("messages", "--channel", "fax")
    assert code == 1 and "unknown channel 'fax': use one of sms, email, voice, letter, " \
        "visit" in said
    code, _, said = await s.cli("messages", "--since", "2026-12-01T08:00:00")
    assert code == 1 and "needs a UTC offset" in said

    answer = await s.call("GET", f"/v1/messages?loan_id={day.loan_id}&channel=visit",
                          "agent")
    assert answer.status_code == 200, answer.text
    [api_visit] = answer.json()["messages"]
    assert api_visit["status"] == "blocked" and api_visit["reason"] == visit["reason"]
    naive = await s.call("GET", "/v1/messages?since=2026-12-01T08:00:00", "ops")
    assert naive.status_code == 422 and "needs a UTC offset" in naive.json()["detail"]
    for role in ROLES:
        status = (await s.call("GET", "/v1/messages?limit=1", role)).status_code
        assert (status == 403) == (role == "platform"), (role, status)


async def _alerts(s: Stack, count: int) -> list[int]:
    """Raise alerts on the day loan's real case through the ledger's own API."""

    async def opened() -> bool:
        return bool(await _rows(s, t.collection_cases, loan_id=s.day.loan_id))

    await eventually(opened, "the day loan's case to be opened", WAIT)
    [case] = await _rows(s, t.collection_cases, loan_id=s.day.loan_id)
    keys = [f"{case['case_id']}:alert:test:{uuid4().hex[:8]}" for _ in range(count)]
    for n, key in enumerate(keys):
        await s.ledger.record_alert(OpsAlert(
            idempotency_key=key, case_id=case["case_id"], workflow_id=case["workflow_id"],
            loan_id=s.day.loan_id, subject=f"legal partner unreachable ({n})",
            body="the referral was not accepted", raised_at=datetime.now(UTC)))
    by_key = {r["idempotency_key"]: r["id"] for r in await _rows(s, t.ops_alerts)}
    return [by_key[k] for k in keys]


async def test_alerts_are_listed_and_acknowledged_once_in_the_cli(stack: Stack) -> None:
    s = stack
    first, second = await _alerts(s, 2)

    code, out, _ = await s.cli("alerts", "--open", "--json")
    assert code == 0 and {first, second} <= {a["alert_id"] for a in json.loads(out)}
    code, _, said = await s.cli("alert", "ack", str(first), "--by", "ana", "--note",
                                "called the partner")
    assert code == 0 and f"Alert {first} acknowledged by ops:ana at " in said
    assert "(note: called the partner)" in said
    code, _, said = await s.cli("alert", "ack", str(first), "--by", "bob")
    assert code == 0 and f"Alert {first} was already acknowledged by ops:ana at " in said
    code, _, said = await s.cli("alert", "ack", "987654")
    assert code == 1 and "no alert 987654 in the ledger" in said

    code, out, _ = await s.cli("alerts", "--open", "--json")
    still_open = {a["alert_id"] for a in json.loads(out)}
    assert second in still_open and first not in still_open
    code, out, _ = await s.cli("alerts", "--loan", s.day.loan_id)
    assert code == 0 and "acknowledged by ops:ana" in out and "open" in out
    assert "legal partner unreachable (0)" in out
    acks = [i for i in await s.ledger.timeline(s.day.loan_id)
            if i.kind == "ops_alert_acknowledged"]
    assert [(a.actor, a.data["alert_id"]) for a in acks] == [("ops:ana", first)]


async def test_alerts_over_rest_ops_acknowledge(stack: Stack) -> None:
    s = stack
    [alert] = await _alerts(s, 1)
    listed = await s.call("GET", "/v1/alerts?open=true", "supervisor")
    assert listed.status_code == 200, listed.text
    assert alert in {a["alert_id"] for a in listed.json()["alerts"] if a["open"]}
    for role in ("platform", "agent", "supervisor"):  # ops acknowledge
        assert (await s.call("POST", f"/v1/alerts/{alert}/ack", role,
                             json={})).status_code == 403, role
    for role in ("platform", "agent"):
        assert (await s.call("GET", "/v1/alerts", role)).status_code == 403, role
    assert (await s.http.get("/v1/alerts")).status_code == 401
    done = await s.call("POST", f"/v1/alerts/{alert}/ack", "ops", json={"note": "on it"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["open"], body["acknowledged_by"], body["note"]) == (False, "ops:ops-1",
                                                                     "on it")
    again = await s.call("POST", f"/v1/alerts/{alert}/ack", "ops")
    assert again.status_code == 409
    assert "already acknowledged by ops:ops-1 at " in again.json()["detail"]
    missing = await s.call("POST", "/v1/alerts/987654/ack", "ops")
    assert missing.status_code == 404 and "no alert 987654" in missing.json()["detail"]
    reopened = (await s.call("GET", "/v1/alerts?open=true", "ops")).json()["alerts"]
    assert alert not in {a["alert_id"] for a in reopened}


async def test_loans_list_the_portfolio_with_next_actions(stack: Stack) -> None:
    s, day, night = stack, stack.day, stack.night
    agent = f"agent-{uuid4().hex[:8]}"
    await s.client.assign_agent(day.loan_id, Assignment(agent_id=agent, actor=SUPERVISOR))
    await s.client.record_contact_outcome(day.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT))
    await s.settle(day)

    async def indexed() -> bool:
        found = [w.id async for w in s.env.client.list_workflows(
            f"AssignedAgent = '{agent}' AND CollectionStage = 'NEGOTIATION'")]
        return found == [day.workflow_id]

    await eventually(indexed, "visibility to index the assignment and the stage", WAIT)
    code, out, _ = await s.cli("loans", "--agent", agent, "--json")
    assert code == 0, out
    [row] = json.loads(out)
    assert (row["loan_id"], row["stage"], row["assigned_agent"]) == (
        day.loan_id, "NEGOTIATION", agent)
    assert row["outstanding"] == {"amount": "1000.00", "currency": "CNY"}
    assert row["days_past_due"] == 3 and row["next_action"] and row["next_action_at"]
    code, out, _ = await s.cli("loans", "--agent", agent)
    assert code == 0 and day.loan_id in out and "NEGOTIATION" in out
    assert "1,000.00 CNY" in out and row["next_action"] in out

    code, out, _ = await s.cli("loans", "--stage", "reminder", "--json")
    reminding = {r["loan_id"] for r in json.loads(out)}
    assert night.loan_id in reminding and day.loan_id not in reminding
    code, out, _ = await s.cli("loans", "--needs-attention", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, _, said = await s.cli("loans", "--stage", "bogus")
    assert code == 1 and "unknown stage 'bogus': use one of REMINDER, NEGOTIATION, LEGAL" \
        in said
    code, _, said = await s.cli("loans", "--agent", "x' OR true")
    assert code == 1 and "agent \"x' OR true\" is not a valid value" in said

    page = (await s.call("GET", f"/v1/loans?agent={agent}", "ops")).json()
    assert [item["loan_id"] for item in page["loans"]] == [day.loan_id]


async def test_a_running_loans_days_past_due_count_from_its_due_date(stack: Stack) -> None:
    """DaysPastDue is written at transitions only: a loan that waits a month in one stage
    is still found by `min_dpd` and shown with its DPD now, counted from DueDate."""
    s, night = stack, stack.night  # waits in reminder for its borrower's morning

    async def indexed() -> bool:
        rows = await portfolio_rows(s.client, LoanFilters(), limit=100, details=False)
        return any(r.loan_id == night.loan_id and r.days_past_due == 3 for r in rows)

    await eventually(indexed, "visibility to index the hand-over", WAIT)
    month_on = datetime.now(UTC) + timedelta(days=30)
    found = {r.loan_id: r for r in await portfolio_rows(
        s.client, LoanFilters(min_dpd=30, as_of=month_on), limit=100, details=False)}
    assert night.loan_id in found and found[night.loan_id].days_past_due == 33
    beyond = await portfolio_rows(s.client, LoanFilters(min_dpd=34, as_of=month_on),
                                  limit=100, details=False)
    assert night.loan_id not in {r.loan_id for r in beyond}


async def test_migration_0008_adds_the_acknowledgement_columns(tmp_path: Path) -> None:
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")

    async def columns() -> set[str]:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: {
                c["name"] for c in inspect(sync).get_columns("ops_alerts")})

    try:
        await migrate(engine, "0007")
        assert "acknowledged_at" not in await columns()
        await migrate(engine)
        assert {"acknowledged_at", "acknowledged_by", "note"} <= await columns()
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(
                MigrationContext.configure(sync), t.metadata))
        assert diff == [], "the migrations and tables.py must describe one schema"
        await downgrade(engine, "0007")
        assert "acknowledged_at" not in await columns()
    finally:
        await engine.dispose()

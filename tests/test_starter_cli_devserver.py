"""Starter, CLI and `duecourse dev` against a REAL Temporal dev server (with visibility).

One dev server and one in-process worker serve the module; the CLI runs as a subprocess
pointed at them through the environment, exactly as an operator would run it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client

from duecourse import search_attributes as sa
from duecourse.handover import StartSummary, start_loans
from duecourse.intake import read_intake_file
from duecourse.security.payload_keys import read_key_file
from duecourse.settings import Settings
from duecourse.temporal.client import CollectionClient, ensure_search_attributes
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServer, free_port
from tests.support.devserver import TEMPORAL_CLI, DevWorker, dev_server_with_worker
from tests.support.processes import interrupt
from tests.support.sealing import session_key_env

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent
DEMO_FILE = ROOT / "duecourse" / "demo" / "loans.csv"
WORKER_SETTINGS = Settings(lender_name="Acme Lending", lender_contact="400-800-1234")
HEADER = ("loan_id,borrower_id,borrower_name,phones,email,timezone,language,jurisdiction,"
          "currency,principal,outstanding,days_past_due,policy")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevWorker]:
    """A dev server, a migrated SQLite ledger and a worker on a fresh task queue."""
    async with dev_server_with_worker(tmp_path_factory.mktemp("devserver"),
                                      WORKER_SETTINGS) as dev:
        yield dev


def csv_row(loan_id: str, *, tz: str = "Asia/Shanghai", jurisdiction: str = "CN",
            currency: str = "CNY", phone: str = "+8613800138000", outstanding: str = "1000.00",
            dpd: str = "3", policy: str = "demo") -> str:
    lang = "zh-CN" if jurisdiction == "CN" else "en"
    return (f"{loan_id},B-{loan_id},Test Borrower,{phone},{loan_id.lower()}@example.com,{tz},"
            f"{lang},{jurisdiction},{currency},{outstanding},{outstanding},{dpd},{policy}")


def counts(summary: StartSummary) -> tuple[int, int, int]:
    return len(summary.started), len(summary.already_running), len(summary.rejected)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float,
                     what: str, interval: float = 0.5) -> None:
    """Poll `check` (visibility and timers are eventually consistent)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {seconds:.0f}s waiting for {what}")


# --------------------------------------------------------------------------- starter
async def test_start_loans_reports_each_row_and_is_idempotent(stack: DevWorker,
                                                              tmp_path: Path) -> None:
    tag = uuid4().hex[:8]
    ids = [f"S-{tag}-{n}" for n in range(1, 4)]
    path = tmp_path / "loans.csv"
    path.write_text("\n".join([
        HEADER,
        csv_row(ids[0]),
        csv_row(ids[1], tz="America/New_York", jurisdiction="US", currency="USD",
                phone="+12125550147"),
        csv_row(ids[2], tz="Europe/London", jurisdiction="GB", currency="GBP",
                phone="+447700900123"),
        csv_row(ids[0], outstanding="999.00"),  # the same loan again
        csv_row(f"S-{tag}-bad", phone="12345"),
        csv_row(f"S-{tag}-nopolicy", policy="aggressive"),
    ]) + "\n", encoding="utf-8")
    now = datetime.now(UTC)
    rows = read_intake_file(path, now)
    progress: list[tuple[int, int]] = []

    first = await start_loans(stack.collection, rows, now=now, concurrency=4,
                              on_progress=lambda done, total: progress.append((done, total)),
                              allow_demo=True)

    assert counts(first) == (3, 0, 3)
    assert [s.loan_id for s in first.started] == ids
    assert all(s.policy.startswith("demo@") for s in first.started)
    reasons = {r.row: r.reason for r in first.rejected}
    assert reasons[4] == f"duplicate: loan {ids[0]} is already on row 1 of this file"
    assert reasons[5].startswith("borrower.phones.0: malformed phone number '12345'")
    assert reasons[6].startswith("unknown policy 'aggressive'; available:")
    assert progress[-1] == (6, 6) and len(progress) == 6

    again = await start_loans(stack.collection, read_intake_file(path, now), now=now,
                              allow_demo=True)
    assert counts(again) == (0, 3, 3)
    assert [s.loan_id for s in again.already_running] == ids
    for loan_id in ids:
        assert (await stack.collection.status(loan_id)).stage == "REMINDER"


async def test_rpc_failure_is_a_rejection_not_a_crash(stack: DevWorker, tmp_path: Path) -> None:
    """A namespace that does not exist makes every start fail at the server."""
    path = tmp_path / "loans.csv"
    path.write_text(f"{HEADER}\n{csv_row('R-1')}\n{csv_row('R-2')}\n", encoding="utf-8")
    now = datetime.now(UTC)
    missing = Settings().model_copy(update={"temporal_namespace": f"missing-{uuid4().hex}"})
    client = await connect_temporal(missing, address=stack.server.address)
    summary = await start_loans(CollectionClient(client, stack.task_queue),
                                read_intake_file(path, now), now=now, allow_demo=True)
    assert counts(summary) == (0, 0, 2)
    assert all("Temporal refused the start (NOT_FOUND)" in r.reason for r in summary.rejected)


# --------------------------------------------------------------------------- visibility
async def test_search_attributes_are_queryable(stack: DevWorker, tmp_path: Path) -> None:
    loan_id = f"V-{uuid4().hex[:8]}"
    path = tmp_path / "loans.csv"
    path.write_text(f"{HEADER}\n{csv_row(loan_id)}\n", encoding="utf-8")
    now = datetime.now(UTC)
    assert counts(await start_loans(stack.collection, read_intake_file(path, now),
                                    now=now, allow_demo=True)) == (1, 0, 0)
    query = (f"CollectionStage = 'REMINDER' AND Jurisdiction = 'CN' AND "
             f"WorkflowId = 'collection-{loan_id}'")

    async def found() -> bool:
        return [w.id async for w in stack.client.list_workflows(query)] == [
            f"collection-{loan_id}"]

    await eventually(found, 10, f"visibility of {loan_id}")


def readme_queries() -> list[str]:
    """The Temporal UI queries the README gives (the block after `<!-- ui-queries -->`)."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- ui-queries -->", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


async def test_readme_ui_queries_work(stack: DevWorker, tmp_path: Path) -> None:
    """Every example query in the README runs on a real server, and the country query the
    README recommends finds a loan handed over with a subdivision code."""
    loan_id = f"Q-{uuid4().hex[:8]}"
    path = tmp_path / "loans.csv"
    row = csv_row(loan_id, tz="America/Los_Angeles", jurisdiction="US-CA", currency="USD",
                  phone="+13105550188")
    path.write_text(f"{HEADER}\n{row}\n", encoding="utf-8")
    now = datetime.now(UTC)
    assert counts(await start_loans(stack.collection, read_intake_file(path, now),
                                    now=now, allow_demo=True)) == (1, 0, 0)
    queries = readme_queries()
    assert 'Jurisdiction STARTS_WITH "US"' in queries and len(queries) >= 8
    for query in queries:  # a query the server cannot parse raises here
        [w.id async for w in stack.client.list_workflows(query, limit=5)]

    async def found() -> bool:
        scoped = f'Jurisdiction STARTS_WITH "US" AND WorkflowId = "collection-{loan_id}"'
        return [w.id async for w in stack.client.list_workflows(scoped)] == [
            f"collection-{loan_id}"]

    await eventually(found, 10, f"visibility of {loan_id} by country")


# --------------------------------------------------------------------------- CLI
@dataclass
class Result:
    code: int
    out: str
    err: str


def cli_env(stack: DevWorker) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUECOURSE_", "TEMPORAL_"))}
    env.update(session_key_env())  # the keys the test's own clients use
    env["DUECOURSE_ALLOW_DEMO_POLICIES"] = "true"  # a sandbox: its loans run on the demo policy
    env.update(TEMPORAL_ADDRESS=stack.server.address, DUECOURSE_TASK_QUEUE=stack.task_queue,
               DUECOURSE_DATABASE_URL=stack.ledger_url, COLUMNS="200", NO_COLOR="1")
    return env


async def cli(stack: DevWorker, *args: str) -> Result:
    """Run `python -m duecourse.cli ...` without blocking the loop the worker runs on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", *args, env=cli_env(stack), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def status_json(stack: DevWorker, loan_id: str) -> dict[str, object]:
    result = await cli(stack, "status", loan_id, "--json")
    assert result.code == 0, result.err
    data: dict[str, object] = json.loads(result.out)
    return data


def outstanding(status: dict[str, object]) -> Decimal:
    money = status["outstanding"]
    assert isinstance(money, dict)
    return Decimal(money["amount"])


def assert_user_error(result: Result, *fragments: str) -> None:
    assert result.code == 1, result
    assert "Traceback" not in result.err + result.out
    assert result.err.startswith("error: ")
    for fragment in fragments:
        assert fragment in " ".join(result.err.split()), result.err


async def test_cli_status_pay_promise_and_timeline(stack: DevWorker, tmp_path: Path) -> None:
    loan_id = f"C-{uuid4().hex[:8]}"
    path = tmp_path / "loans.csv"
    path.write_text(f"{HEADER}\n{csv_row(loan_id, outstanding='1000.00')}\n", encoding="utf-8")
    started = await cli(stack, "start", str(path))
    assert started.code == 0, started.err
    assert "1 started" in started.out

    status = await status_json(stack, loan_id)
    assert status["stage"] == "REMINDER" and outstanding(status) == Decimal("1000.00")
    panel = await cli(stack, "status", loan_id)
    assert panel.code == 0 and "REMINDER" in panel.out and "1,000.00 CNY" in panel.out

    too_much = await cli(stack, "promise", loan_id, "--amount", "5000", "--date",
                         datetime.now(UTC).date().isoformat(), "--agent", "agent-7")
    assert_user_error(too_much, "exceeds the outstanding balance 1000.00 CNY")

    bad_amount = await cli(stack, "pay", loan_id, "--amount", "abc", "--reference", "R0")
    assert_user_error(bad_amount, "amount 'abc' is not a number")
    negative = await cli(stack, "pay", loan_id, "--amount", "-5", "--reference", "R0")
    assert_user_error(negative, "amount must be greater than zero")

    paid = await cli(stack, "pay", loan_id, "--amount", "300.00", "--reference", "R1")
    assert paid.code == 0, paid.err
    assert "700.00 CNY" in paid.out
    assert outstanding(await status_json(stack, loan_id)) == Decimal("700.00")

    repeated = await cli(stack, "pay", loan_id, "--amount", "300.00", "--reference", "R1")
    assert repeated.code == 0, repeated.err
    assert "outstanding unchanged" in repeated.err
    assert outstanding(await status_json(stack, loan_id)) == Decimal("700.00")

    rest = await cli(stack, "pay", loan_id, "--amount", "700", "--reference", "R2")
    assert rest.code == 0, rest.err
    assert "PAID" in rest.out
    result = await asyncio.wait_for(stack.collection.result(loan_id), 30)
    assert result.outcome == "PAID" and result.total_paid.amount == Decimal("1000.00")

    timeline = await cli(stack, "timeline", loan_id, "--json")
    assert timeline.code == 0, timeline.err
    items = json.loads(timeline.out)
    payments = [i["data"]["reference"] for i in items if i["kind"] == "payment"]
    assert payments == ["R1", "R2"]
    assert any(i["kind"] == "payment_duplicate_ignored" for i in items)
    closing = [i for i in items if i["kind"] == "stage_changed" and i["data"].get("outcome")]
    assert [c["data"]["outcome"] for c in closing] == ["PAID"]
    limited = await cli(stack, "timeline", loan_id, "--json", "--limit", "2")
    assert len(json.loads(limited.out)) == 2

    closed = await cli(stack, "pay", loan_id, "--amount", "1", "--reference", "R3")
    assert_user_error(closed, f"collection for loan {loan_id} has ended")


async def test_cli_user_errors_are_one_red_line(stack: DevWorker) -> None:
    unknown = await cli(stack, "status", "NO-SUCH-LOAN")
    assert_user_error(unknown, "no collection found for loan NO-SUCH-LOAN",
                      f"asked Temporal at {stack.server.address}, namespace default")
    no_history = await cli(stack, "timeline", "NO-SUCH-LOAN")
    assert_user_error(no_history, "no ledger entries for loan NO-SUCH-LOAN")
    bad_file = await cli(stack, "start", "loans.xlsx")
    assert_user_error(bad_file, "unsupported file type '.xlsx'")
    no_policy = await cli(stack, "policy", "nope")
    assert_user_error(no_policy, "unknown policy 'nope'")


async def test_cli_policies(stack: DevWorker) -> None:
    listed = await cli(stack, "policies")
    assert listed.code == 0 and "standard" in listed.out and "demo" in listed.out
    shown = await cli(stack, "policy", "demo", "--json")
    assert shown.code == 0
    assert json.loads(shown.out)["reminder"]["window"] == "PT1M"


# --------------------------------------------------------------------------- duecourse dev
async def test_dev_server_restarts_on_its_own_database(tmp_path: Path) -> None:
    """A second `duecourse dev` re-passes --search-attribute for attributes that exist."""
    db = tmp_path / "temporal.db"
    for _ in range(2):
        async with DevServer(binary=TEMPORAL_CLI, headless=True, db_file=db,
                             log_file=tmp_path / "temporal.log") as server:
            client = await connect_temporal(Settings(), address=server.address)
            assert await ensure_search_attributes(client) == []  # all registered at start
    assert db.exists()


async def _sealed_decoded_for_the_ui_and_measured(
        client: Client, data: Path, ui_port: int, api_port: int, metrics_port: int) -> None:
    """The embedded default is sealed with a key only this user reads; the UI opens the
    payloads through the API's codec server with dev's own ops key; the worker and the API
    serve their metrics."""
    keys = data / "payload-keys"
    assert keys.stat().st_mode & 0o777 == 0o600
    history = await client.get_workflow_handle("collection-DEMO-CN-1001").fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert started.metadata["encoding"] == b"binary/encrypted"
    assert b"DEMO-CN-1001" not in started.data
    async with httpx.AsyncClient() as http:
        ui = (await http.get(f"http://127.0.0.1:{ui_port}/api/v1/settings")).json()
        endpoint = ui["Codec"]["Endpoint"]
        assert endpoint.startswith(f"http://127.0.0.1:{api_port}/codec/ui/dc_"), endpoint
        assert (data / "temporal-ui-key").stat().st_mode & 0o777 == 0o600
        wire = {"metadata": {k: base64.b64encode(v).decode()
                             for k, v in started.metadata.items()},
                "data": base64.b64encode(started.data).decode()}
        opened = await http.post(f"{endpoint}/decode", json={"payloads": [wire]},
                                 headers={"Origin": f"http://localhost:{ui_port}"})
        assert opened.status_code == 200, opened.text
        decoded = base64.b64decode(opened.json()["payloads"][0]["data"])
        assert b"DEMO-CN-1001" in decoded
        refused = await http.post(f"http://127.0.0.1:{api_port}/codec/decode",
                                  json={"payloads": [wire]})
        assert refused.status_code == 401  # no key, no borrower data
        worker = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert "temporal_workflow_completed" in worker or "temporal_request" in worker
        assert "duecourse_messages_total" in worker
        api = (await http.get(f"http://127.0.0.1:{api_port}/metrics")).text
        assert "duecourse_api_requests_total" in api


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_dev_demo_runs_everything_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    port, ui_port, api_port, metrics_port = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUECOURSE_", "TEMPORAL_"))}
    env.update(COLUMNS="200", NO_COLOR="1")  # no payload key: dev makes <data dir>/payload-keys
    log = (tmp_path / "dev.out").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", "dev", "--demo", "--port", str(port),
        "--ui-port", str(ui_port), "--api-port", str(api_port),
        "--metrics-port", str(metrics_port), "--data-dir", str(tmp_path / "data"), env=env,
        cwd=tmp_path, stdout=log, stderr=asyncio.subprocess.STDOUT)
    try:
        demo_rows = read_intake_file(DEMO_FILE, datetime.now(UTC))
        demo_ids = [r.loan_id for r in demo_rows]
        client: Client | None = None

        async def server_up() -> bool:
            nonlocal client
            assert proc.returncode is None, (tmp_path / "dev.out").read_text()
            keys = tmp_path / "data" / "payload-keys"  # what `duecourse dev` seals with
            if not keys.exists():
                return False
            try:
                client = await connect_temporal(Settings(), address=f"127.0.0.1:{port}",
                                                ring=read_key_file(keys))
            except RuntimeError:
                return False
            return True

        await eventually(server_up, 60, "the dev server")
        assert client is not None
        loans = CollectionClient(client, "duecourse")

        async def all_started() -> bool:
            try:
                statuses = [await loans.status(str(i)) for i in demo_ids]
            except Exception:
                return False
            return all(s.policy.startswith("demo@") for s in statuses)

        await eventually(all_started, 60, "the demo loans")
        # the CLI in another terminal finds this server and ledger through the env file
        from duecourse.cli.env_file import read_env
        written = read_env(tmp_path / "data" / "env")
        assert written["DUECOURSE_TEMPORAL_ADDRESS"].endswith(f":{port}"), written
        assert written["DUECOURSE_DATABASE_URL"].endswith(
            str((tmp_path / "data" / "ledger.db").resolve())), written
        assert written["DUECOURSE_API_URL"] == f"http://127.0.0.1:{api_port}"
        for loan_id in demo_ids:
            desc = await loans.handle(str(loan_id)).describe()
            assert desc.typed_search_attributes.get(sa.COLLECTION_STAGE) is not None

        async def contacted() -> bool:
            return any([(await loans.status(str(i))).contacts_sent > 0 for i in demo_ids])

        await eventually(contacted, 30, "a demo contact to be sent")
        await _sealed_decoded_for_the_ui_and_measured(
            client, tmp_path / "data", ui_port, api_port, metrics_port)
        async with httpx.AsyncClient() as http:  # the REST API runs alongside
            spec = (await http.get(f"http://127.0.0.1:{api_port}/openapi.json")).json()
            assert "/v1/loans" in spec["paths"]
            anonymous = await http.get(f"http://127.0.0.1:{api_port}/v1/loans/{demo_ids[0]}")
            assert anonymous.status_code == 401
        # Waiting the demo's stories out would dominate the suite's wall time (the demo's
        # endings are tests/test_demo_story.py's, on virtual time); a next step at most
        # minutes away (days on `standard`), at any hour of the borrower's day, shows the
        # cadence - and the scripted people act on their own.
        now = datetime.now(UTC)
        for loan_id in demo_ids:
            s = await loans.status(str(loan_id))
            if s.outcome is not None:
                continue
            assert s.next_action is not None or s.frozen, s
            if s.next_action is not None:
                assert (s.next_action.due_at - now).total_seconds() < 600, s.next_action

        async def paid() -> bool:  # the first story: paid after the first reminder
            return (await loans.status("DEMO-CN-1001")).outcome == "PAID"

        await eventually(paid, 60, "the scripted borrower of DEMO-CN-1001 to pay")

        async def narrated() -> bool:  # the banner's table: who waits for what, until when
            log.flush()
            return "Waiting for" in (tmp_path / "dev.out").read_text()

        await eventually(narrated, 30, "the table of waiting demo loans")
        assert (tmp_path / "data" / "ledger.db").exists()
        assert (tmp_path / "data" / "temporal.db").exists()
        assert listening(ui_port)
    finally:
        try:
            code = await interrupt(proc, 20)
        finally:
            log.close()
    output = (tmp_path / "dev.out").read_text()
    assert code == 0, output
    assert "Traceback" not in output
    assert f"{len(demo_ids)} started" in output and f"http://localhost:{ui_port}" in output
    assert "DEMO-CN-1001  borrower paid" in output, output
    assert not listening(port) and not listening(ui_port) and not listening(api_port)

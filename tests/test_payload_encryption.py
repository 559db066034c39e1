"""Borrower data is sealed in Temporal: the raw histories the server keeps, its
descriptions, search attributes and the UI's summary and details hold no borrower PII;
an unknown key id fails the workflow task naming it; rotation keeps running loans going;
a missing or malformed key stops the worker and the CLI with one sentence."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from duecourse.domain.calendar import local_date
from duecourse.domain.case.commands import (
    CancelRequest,
    ContactOutcomeReport,
    ContactResult,
    PromiseRequest,
)
from duecourse.domain.loan import LoanIntake
from duecourse.domain.money import Money
from duecourse.domain.policy import Channel
from duecourse.domain.scoring import ScoreInput, ScoreResult
from duecourse.policies import load_policy
from duecourse.runtime import build_worker
from duecourse.security.payload_codec import (
    ENCODING,
    KEY_ID_FIELD,
    EncryptionCodec,
    PayloadKeyUnknown,
)
from duecourse.security.payload_keys import KeyRing, ensure_key_file
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.temporal.client import ActionRejected, CollectionClient
from duecourse.temporal.connection import connect
from duecourse.temporal.converter import sealed_data_converter
from tests.conftest import TrackingClient, settings_for_tests, settle
from tests.factories import AGENT, daytime_zone, make_loan, payment
from tests.scorers import by_loan_id
from tests.support.devserver import dev_server_and_ledger
from tests.support.sealing import (
    fresh_ring,
    open_payloads,
    patch_marker,
    payloads_in,
    rotated,
    session_ring,
    without_key_settings,
)

ROOT = Path(__file__).resolve().parents[1]
STANDARD = load_policy("standard")
BORROWERS = [
    {"name": "欧阳秋雨", "phones": ["+8613912340987"], "email": "qiuyu.ouyang@pii-probe.example",
     "address": "88 Probe Lane, Pudong, Shanghai 200120"},
    {"name": "Zephyrine Quillfeather", "phones": ["+8613788885555"],
     "email": "zephyrine.q@pii-probe.example", "address": "7 Quillfeather Court, Shenzhen"},
]
PII = [text for b in BORROWERS for text in (
    b["name"], b["phones"][0][3:], b["email"], b["address"], b["address"].split(",")[0])]
"""Each borrower's name, phone (national digits, so any formatting of it is caught), email
and address (whole, and its street alone). The intake has no national id field."""
SETTING = "DUECOURSE_PAYLOAD_KEY_FILE"


def leaky_scorer(facts: ScoreInput) -> ScoreResult:
    """A scorer bug that quotes a borrower in its error once a payment arrived: the
    activity's failure message and stack trace must be sealed too."""
    if facts.payments:
        b = BORROWERS[0]
        raise RuntimeError(f"no features for {b['name']} ({b['phones'][0]}, {b['email']})")
    return by_loan_id(facts)


def forms(text: str) -> list[bytes]:
    """How `text` may show in raw bytes: UTF-8, and JSON-escaped (ASCII or not)."""
    return list({text.encode(), json.dumps(text)[1:-1].encode(),
                 json.dumps(text, ensure_ascii=False)[1:-1].encode()})


def leaks(blob: bytes) -> list[str]:
    return [text for text in PII if any(form in blob for form in forms(text))]


async def family(client: Client, loan: LoanIntake) -> list[WorkflowHandle]:
    """The loan's workflow and every child it started (plans, legal cases)."""
    found, pending = [], [loan.workflow_id]
    while pending:
        handle = client.get_workflow_handle(pending.pop())
        found.append(handle)
        async for event in handle.fetch_history_events():
            if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                pending.append(
                    event.start_child_workflow_execution_initiated_event_attributes.workflow_id)
    return found


@pytest.fixture
async def leaky(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[TrackingClient]:
    queue = f"tq-{uuid4().hex}"
    settings = settings_for_tests().model_copy(
        update={"scorer": f"{__name__}:leaky_scorer"})
    client = TrackingClient(ts_env, queue)
    async with build_worker(ts_env.client, ledger, settings, queue):
        try:
            yield client
        finally:
            await client.end_all()


async def test_raw_histories_and_descriptions_hold_no_borrower_pii(
        ts_env: WorkflowEnvironment, leaky: TrackingClient) -> None:
    """Two loans through contacts, an agent's note quoting the borrower, a refused update,
    a scorer failure quoting the borrower and payments: the server's bytes never show the
    PII, and opening the payloads with the ring shows it was there all along."""
    now = await ts_env.get_current_time()
    loans = [make_loan(now, dpd=1, **b) for b in BORROWERS]
    for loan in loans:
        assert (await leaky.start(loan, STANDARD)).started
    await ts_env.sleep(timedelta(days=2))
    first = loans[0]
    assert (await leaky.status(first.loan_id)).contacts_sent >= 1
    await leaky.record_contact_outcome(first.loan_id, ContactOutcomeReport(
        channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT,
        note=f"spoke to {BORROWERS[0]['name']} on {BORROWERS[0]['phones'][0]}"))
    yesterday = local_date(await ts_env.get_current_time(), first.borrower.timezone) \
        - timedelta(days=1)
    with pytest.raises(ActionRejected, match="in the past"):
        await leaky.promise_to_pay(first.loan_id, PromiseRequest(
            amount=Money.of("100.00", "CNY"), due_date=yesterday, actor=AGENT))
    await leaky.report_payment(first.loan_id, payment("100.00", "PII-PART"))  # scorer fails
    await settle(leaky.handle(first.loan_id))
    for loan in loans:
        await leaky.report_payment(loan.loan_id, payment(
            str((await leaky.status(loan.loan_id)).outstanding.amount), f"PII-{loan.loan_id}"))
        assert (await leaky.result(loan.loan_id)).outcome == "PAID"

    activity_failures = 0
    for loan in loans:
        for handle in await family(ts_env.client, loan):
            history = await handle.fetch_history()
            raw = b"".join(e.SerializeToString() for e in history.events)
            assert not leaks(raw), f"{handle.id}'s raw history shows {leaks(raw)}"
            assert not leaks(history.to_json().encode()), f"{handle.id}'s JSON history"
            unsealed = [p.metadata.get("encoding") for e in history.events
                        if not patch_marker(e)
                        for p in payloads_in(e) if p.metadata.get("encoding") != ENCODING]
            assert not unsealed, f"{handle.id} has unsealed payloads: {unsealed}"
            for marker in filter(patch_marker, history.events):  # written by the SDK's core,
                for p in payloads_in(marker):  # never by a codec: they name a patch, no more
                    assert set(json.loads(p.data)) <= {"id", "deprecated"}, p.data
            for event in history.events:
                if event.HasField("activity_task_failed_event_attributes"):
                    activity_failures += 1
                    failure = event.activity_task_failed_event_attributes.failure
                    assert failure.message == "Encoded failure" and not failure.stack_trace

            described = await handle.describe()
            blob = described.raw_description.SerializeToString()
            assert not leaks(blob), f"{handle.id}'s description shows {leaks(blob)}"
            shown = [await described.static_summary() or "",
                     await described.static_details() or "",
                     json.dumps(await described.memo(), default=str),
                     *(str(p.value) for p in described.typed_search_attributes)]
            metadata = await handle.query("__temporal_workflow_metadata",
                                          result_type=WorkflowMetadata)
            shown.append(metadata.current_details)
            assert not leaks("\n".join(shown).encode()), f"{handle.id} shows {shown}"

            if handle.id == loan.workflow_id:  # the control: the PII is there, sealed
                assert loan.loan_id in shown[0], "the summary names the loan, not its borrower"
                codec = ts_env.client.data_converter.payload_codec
                assert isinstance(codec, EncryptionCodec)
                for event in history.events:
                    open_payloads(event, codec)
                opened = b"".join(e.SerializeToString() for e in history.events)
                assert BORROWERS[loans.index(loan)]["name"].encode() in opened
    assert activity_failures >= 1, "the leaky scorer's failure was expected in a history"


async def wait_for_task_failure(handle: WorkflowHandle, seconds: float = 20) -> object:
    for _ in range(int(seconds / 0.1)):
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_task_failed_event_attributes"):
                return event
        await asyncio.sleep(0.1)
    pytest.fail(f"{handle.id} had no failed workflow task within {seconds:.0f}s")


async def client_with(ring: KeyRing, address: str) -> Client:
    return await connect(Settings(), address=address, ring=ring)


async def test_a_payload_sealed_with_an_unknown_key_fails_the_task_naming_the_key(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    wider = rotated(session_ring())  # the worker lacks this ring's newest key
    unknown = wider.newest[0]
    queue = f"tq-{uuid4().hex}"
    stranger = CollectionClient(await client_with(
        wider, ts_env.client.service_client.config.target_host), queue)
    loan = make_loan(await ts_env.get_current_time(), dpd=1, **BORROWERS[0])
    async with build_worker(ts_env.client, ledger, settings_for_tests(), queue):
        await stranger.start(loan, STANDARD)
        handle = ts_env.client.get_workflow_handle(loan.workflow_id)
        try:
            event = await wait_for_task_failure(handle)
            events = [e async for e in handle.fetch_history_events()]
        finally:
            await handle.terminate("test finished")
    failure = event.workflow_task_failed_event_attributes.failure  # type: ignore[attr-defined]
    assert unknown not in failure.message and failure.message == "Encoded failure"
    error = await sealed_data_converter(wider).decode_failure(failure)
    assert f"payload sealed with key id {unknown!r}" in str(error), str(error)
    assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in events), \
        "the workflow ran on an input it could not open"


@pytest.mark.devserver  # the time-skipping server never moves a task off a gone worker's
async def test_a_loan_started_before_rotation_continues_on_the_rotated_ring(  # sticky queue
        tmp_path: Path) -> None:
    old = fresh_ring()
    new = rotated(old)
    queue = f"tq-{uuid4().hex}"
    async with dev_server_and_ledger(tmp_path) as dev:
        before = CollectionClient(await client_with(old, dev.server.address), queue)
        after = CollectionClient(await client_with(new, dev.server.address), queue)
        loan = make_loan(datetime.now(UTC), dpd=3, tz=daytime_zone(datetime.now(UTC)))
        async with build_worker(before.client, dev.ledger, settings_for_tests(), queue):
            await before.start(loan, STANDARD)
            await settle(before.handle(loan.loan_id))
        async with build_worker(after.client, dev.ledger, settings_for_tests(), queue):
            await after.report_payment(loan.loan_id, payment("1000.00", "AFTER-ROTATION"))
            result = await asyncio.wait_for(after.result(loan.loan_id), 60)
        assert result.outcome == "PAID"
        history = await after.handle(loan.loan_id).fetch_history()
        with pytest.raises(PayloadKeyUnknown, match=repr(new.newest[0])):
            await before.result(loan.loan_id)  # a process without the new key cannot
    key_ids = [p.metadata[KEY_ID_FIELD].decode() for e in history.events
               for p in payloads_in(e)]
    assert key_ids[0] == old.newest[0], "the hand-over was sealed with the old key"
    assert key_ids[-1] == new.newest[0], "the rotated worker seals with the newest key"


async def run(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_missing_or_malformed_key_stops_the_worker_and_the_cli_in_one_sentence(
        tmp_path: Path) -> None:
    bare = {**without_key_settings(), "DUECOURSE_DATA_DIR": str(tmp_path / "data"),
            "TEMPORAL_ADDRESS": "127.0.0.1:1", "COLUMNS": "400", "NO_COLOR": "1"}
    malformed = {**bare, "DUECOURSE_PAYLOAD_KEYS": "k1:c2hvcnQ="}
    runs = await asyncio.gather(
        run("-m", "duecourse.cli", "worker", env=bare, cwd=tmp_path),
        run(str(ROOT / "worker.py"), env=bare, cwd=tmp_path),
        run("-m", "duecourse.cli", "status", "L-1", env=bare, cwd=tmp_path),
        run("-m", "duecourse.cli", "status", "L-1", env=malformed, cwd=tmp_path),
        run("-m", "duecourse.cli", "start", str(ROOT / "duecourse" / "demo" / "loans.csv"),
            env=bare, cwd=tmp_path))
    for code, out in runs:
        assert code == 1, out
        assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
        assert SETTING in out and "DUECOURSE_PAYLOAD_KEYS" in out, out
    assert "does not exist" in runs[0][1] and "not 32 bytes" in runs[3][1]


async def test_the_data_dirs_key_file_alone_is_enough(ts_env: WorkflowEnvironment,
                                                      ledger: Ledger, tmp_path: Path) -> None:
    """What `duecourse dev` leaves: only <data dir>/payload-keys; the CLI opens with it
    what a worker sealed with it."""
    ring = ensure_key_file(tmp_path / "data" / "payload-keys")
    queue = f"tq-{uuid4().hex}"
    address = ts_env.client.service_client.config.target_host
    sealed = CollectionClient(await client_with(ring, address), queue)
    loan = make_loan(await ts_env.get_current_time(), dpd=3, **BORROWERS[1])
    env = {**without_key_settings(), "DUECOURSE_DATA_DIR": str(tmp_path / "data"),
           "TEMPORAL_ADDRESS": address, "DUECOURSE_TASK_QUEUE": queue, "COLUMNS": "400",
           "NO_COLOR": "1"}
    async with build_worker(sealed.client, ledger, settings_for_tests(), queue):
        await sealed.start(loan, STANDARD)
        await settle(sealed.handle(loan.loan_id))
        code, out = await run("-m", "duecourse.cli", "status", loan.loan_id, "--json",
                              env=env, cwd=tmp_path)
        await sealed.cancel(loan.loan_id, CancelRequest(reason="test finished"))
        await asyncio.wait_for(sealed.handle(loan.loan_id).result(), 30)
    assert code == 0, out
    assert json.loads(out)["loan_id"] == loan.loan_id

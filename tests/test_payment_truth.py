"""A payment's answer is the truth, even when Temporal's reply is lost or no worker runs.

Against a REAL Temporal dev server, without mocks: real client timeouts (a tiny
`rpc_timeout`: the server may record the signal after the client gave up, which is how
`Temporal error (CANCELLED): Timeout expired` used to be printed for an applied payment),
a worker really stopped and started again, and a loan really closed by the payment whose
retry used to be refused with "collection has ended".
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.api.enums.v1 import EventType

from duecourse.domain.loan import LoanIntake
from duecourse.policies import load_policy
from duecourse.runtime import build_worker
from duecourse.temporal.client import (
    CollectionClient,
    LoanClosed,
    LoanNotFound,
    PaymentFate,
    PaymentUnconfirmed,
)
from tests.conftest import settings_for_tests
from tests.factories import daytime_zone, make_loan, payment
from tests.support.devserver import DevLedger, dev_server_and_ledger
from tests.support.sealing import session_key_env

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent
DEMO = load_policy("demo")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevLedger]:
    """A dev server and a ledger; each test runs (and stops) its own workers."""
    async with dev_server_and_ledger(tmp_path_factory.mktemp("payments")) as dev:
        yield dev


def daytime_loan(outstanding: str = "1000.00") -> LoanIntake:
    now = datetime.now(UTC)
    return make_loan(now, dpd=3, tz=daytime_zone(now), policy="demo", outstanding=outstanding)


async def signalled_references(client: CollectionClient, loan_id: str) -> list[str]:
    """The references of every `report_payment` in the loan's history, read raw (not
    through the code under test; only unsealed by the codec)."""
    codec = client.client.data_converter.payload_codec
    assert codec is not None
    found = []
    async for event in client.handle(loan_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name == "report_payment":
                [report] = await codec.decode([attrs.input.payloads[0]])
                found.append(json.loads(report.data)["reference"])
    return found


async def test_a_lost_reply_is_settled_by_the_history(stack: DevLedger) -> None:
    """Client timeouts from far too short to ample: each answer agrees with the history,
    and some signals were recorded although their reply timed out."""
    client = CollectionClient(stack.client, f"tq-{uuid4().hex}")  # no worker: none needed
    loan = daytime_loan(outstanding="1000000.00")
    await client.start(loan, DEMO)
    said: dict[str, bool] = {}  # reference -> whether we said it reached the loan
    lost_but_received = lost_and_absent = 0
    timeout_us = 50
    while timeout_us <= 200_000 and not (lost_but_received and lost_and_absent):
        for n in range(4):
            ref = f"T-{timeout_us}-{n}"
            try:  # a short settle keeps the sweep quick; the check below proves it enough
                outcome = await client.report_payment(
                    loan.loan_id, payment("1.00", ref), settle=0.5,
                    rpc_timeout=timedelta(microseconds=timeout_us))
            except PaymentUnconfirmed as err:
                assert err.received is False, err
                assert "was not applied" in err.message
                assert "it is safe to retry with the same reference" in err.message
                said[ref] = False
                lost_and_absent += 1
                continue
            said[ref] = True
            assert outcome.status == "accepted"
            if outcome.recovered_from is not None:  # the reply was lost; the history told
                assert outcome.fate is PaymentFate.RECEIVED  # no worker applies it
                assert f"payment {ref} was received for loan {loan.loan_id}" in outcome.detail
                assert "Temporal's reply was lost" in outcome.detail
                lost_but_received += 1
        timeout_us *= 2
    await asyncio.sleep(1)  # a signal still on its way would show by now
    recorded = set(await signalled_references(client, loan.loan_id))
    assert {ref for ref, reached in said.items() if reached} == recorded & set(said)
    assert lost_but_received, "no signal was recorded after its reply timed out"
    assert lost_and_absent, "no signal timed out before the server recorded it"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return " ".join((self.out + self.err).split())


async def cli(stack: DevLedger, task_queue: str, *args: str) -> Result:
    """`python -m duecourse.cli ...` as an operator runs it, without blocking the loop the
    worker runs on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUECOURSE_", "TEMPORAL_"))}
    env.update(session_key_env())  # the keys the test's own clients use
    env.update(TEMPORAL_ADDRESS=stack.server.address, DUECOURSE_TASK_QUEUE=task_queue,
               DUECOURSE_DATABASE_URL=stack.ledger_url, COLUMNS="200", NO_COLOR="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def test_cli_pay_while_the_worker_is_down_then_retry_after_it_closed(
        stack: DevLedger) -> None:
    queue = f"tq-{uuid4().hex}"
    client = CollectionClient(stack.client, queue)
    loan = daytime_loan()
    loan_id = loan.loan_id
    async with build_worker(stack.client, stack.ledger, settings_for_tests(), queue):
        await client.start(loan, DEMO)
        first = await cli(stack, queue, "pay", loan_id, "--amount", "300", "--reference", "R1")
        assert first.code == 0, first
        assert f"Payment R1 of 300.00 CNY applied to loan {loan_id}" in first.text
        assert "Outstanding: 1,000.00 CNY -> 700.00 CNY" in first.text

    # The worker is down (restarting): the payment is recorded, and the CLI says so.
    down = await cli(stack, queue, "pay", loan_id, "--amount", "700", "--reference", "R2",
                     "--wait", "1")
    assert down.code == 0, down
    assert f"Payment R2 of 700.00 CNY was received for loan {loan_id}; no worker has " \
           "applied it yet" in down.text
    assert "no worker processed it within 1 s" in down.text
    again = await cli(stack, queue, "pay", loan_id, "--amount", "700", "--reference", "R2")
    assert again.code == 0, again
    assert f"Duplicate: payment R2 was received for loan {loan_id}" in again.text
    assert "nothing changed" in again.text

    async with build_worker(stack.client, stack.ledger, settings_for_tests(), queue):
        result = await asyncio.wait_for(client.result(loan_id), 60)  # R2 paid it in full
        assert result.outcome == "PAID"
    assert (await client.payment_trace(loan_id, "R2")).fate is PaymentFate.APPLIED

    # The loan has closed and no worker runs: a retry of R2 is a duplicate, not refused.
    retry = await cli(stack, queue, "pay", loan_id, "--amount", "700", "--reference", "R2")
    assert retry.code == 0, retry
    assert f"Duplicate: payment R2 was applied to loan {loan_id}" in retry.text
    assert "700.00 CNY, outstanding after it 0.00 CNY; nothing changed" in retry.text
    as_json = await cli(stack, queue, "pay", loan_id, "--amount", "700", "--reference", "R2",
                        "--json")
    assert as_json.code == 0, as_json
    answer = json.loads(as_json.out)
    assert (answer["status"], answer["payment"]) == ("duplicate", "applied")
    assert answer["outstanding"] == {"amount": "0.00", "currency": "CNY"}
    late = await cli(stack, queue, "pay", loan_id, "--amount", "5", "--reference", "R3")
    assert late.code == 1, late
    assert f"collection for loan {loan_id} has ended (PAID); payment R3 was not applied" \
        in late.text
    assert "Traceback" not in late.text


async def test_client_answers_duplicate_for_the_payment_that_closed_the_loan(
        stack: DevLedger) -> None:
    """The facade the API uses: a closed loan refuses the signal, and the history says
    the reference was applied - 200 `duplicate`, not 409."""
    queue = f"tq-{uuid4().hex}"
    client = CollectionClient(stack.client, queue)
    loan = daytime_loan()
    async with build_worker(stack.client, stack.ledger, settings_for_tests(), queue):
        await client.start(loan, DEMO)
        first = await client.report_payment(loan.loan_id, payment("1000.00", "ALL-1"))
        assert (first.status, first.fate) == ("accepted", PaymentFate.RECEIVED)
        assert (await asyncio.wait_for(client.result(loan.loan_id), 60)).outcome == "PAID"
    retry = await client.report_payment(loan.loan_id, payment("1000.00", "ALL-1"))
    assert (retry.status, retry.fate) == ("duplicate", PaymentFate.APPLIED)
    assert retry.detail.startswith(f"payment ALL-1 was applied to loan {loan.loan_id} at ")
    assert retry.detail.endswith("; reported again, nothing changed")
    with pytest.raises(LoanClosed, match=r"has ended \(PAID\); payment OTHER was not applied"):
        await client.report_payment(loan.loan_id, payment("1.00", "OTHER"))
    with pytest.raises(LoanNotFound):  # an unknown loan is not mistaken for a lost reply
        await client.report_payment(f"NO-{uuid4().hex[:6]}", payment("1.00", "X"))

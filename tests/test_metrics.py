"""Metrics move when loans do: a real worker with a metrics runtime on a free port and the
API app, on a real dev server; a loan is handed over and paid, then both endpoints are
scraped as Prometheus would."""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from duecourse.activities.ledger import LedgerActivities
from duecourse.activities.scoring import load_scorer
from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.domain.actor import SYSTEM
from duecourse.domain.entries import (
    AgreementRecorded,
    ComplianceDecided,
    PaymentRecorded,
    PromiseRecorded,
    StageChanged,
)
from duecourse.observability.business_metrics import SDK_SERIES
from duecourse.observability.prometheus import metrics_runtime
from duecourse.runtime import build_worker
from duecourse.security.payload_keys import new_key_line, parse_keys
from duecourse.store import Ledger, connect, migrate
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.contracts import OpenLoan, RecordEntries
from duecourse.temporal.devserver import DevServer
from tests.conftest import settings_for_tests
from tests.factories import daytime_zone, make_loan
from tests.support.waiting import eventually

TEMPORAL = Path(sys.executable).parent / "temporal"
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? "
                    r"(?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in a Prometheus text exposition."""
    found = []
    for line in text.splitlines():
        if match := SAMPLE.match(line):
            labels = dict(LABEL.findall(match["labels"] or ""))
            found.append((match["name"], labels, float(match["value"])))
    return found


def total(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(value for n, got, value in samples(text)
               if n == name and labels.items() <= got.items())


@dataclass
class Stack:
    http: httpx.AsyncClient
    worker_metrics: str
    token: str
    ledger: Ledger

    async def worker_scrape(self) -> str:
        async with httpx.AsyncClient() as scraper:
            response = await scraper.get(self.worker_metrics)
        assert response.status_code == 200
        return response.text


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    port = free_port()
    # breaks once a loan has a payment: the failures test needs a real activity failure
    settings = settings_for_tests().model_copy(
        update={"scorer": "tests.scorers:fails_after_payment"})
    ring = parse_keys(new_key_line(), "the test's payload key")
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrate(engine)
    ledger, keys = Ledger(engine), KeyStore(engine)
    token = (await keys.create("platform-1", "platform"))[1]
    queue = f"metrics-{uuid4().hex}"
    try:
        async with DevServer(binary=TEMPORAL, headless=True,
                             log_file=tmp_path / "temporal.log") as server:
            client = await connect_temporal(settings, address=server.address, ring=ring,
                                            runtime=metrics_runtime(f"127.0.0.1:{port}"))
            services = Services(client=CollectionClient(client, queue), ledger=ledger,
                                keys=keys, settings=settings)
            async with build_worker(client, ledger, settings, queue), httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=create_app(settings, services)),
                    base_url="http://api") as http:
                yield Stack(http, f"http://127.0.0.1:{port}/metrics", token, ledger)
    finally:
        await engine.dispose()


@pytest.mark.devserver
async def test_a_loan_handed_over_and_paid_moves_the_worker_and_api_series(
        stack: Stack) -> None:
    now = datetime.now(UTC)
    body = make_loan(now, dpd=3, policy="demo", outstanding="1000.00", currency="CNY",
                     tz=daytime_zone(now)).model_dump(mode="json")
    loan = body["loan_id"]
    auth = {"Authorization": f"Bearer {stack.token}"}
    started = await stack.http.post("/v1/loans", json=body, headers=auth)
    assert started.status_code == 201, started.text

    async def reminded() -> bool:  # the demo policy's first reminder goes out at once
        return bool([r for r in await stack.ledger.rows(t.contact_attempts, loan_id=loan)
                     if r["status"] == "sent"])

    await eventually(reminded, "the first reminder sent")
    paid = await stack.http.post(f"/v1/loans/{loan}/payments", headers=auth,
                                 json={"reference": "PAY-1", "amount": "1000.00"})
    assert paid.status_code == 202, paid.text

    async def closed() -> bool:
        return any(r["outcome"] == "PAID"
                   for r in await stack.ledger.rows(t.stage_transitions, loan_id=loan))

    await eventually(closed, "the loan closed as paid")
    worker = await stack.worker_scrape()
    assert total(worker, "duecourse_stage_transitions_total", to="REMINDER") == 1
    assert total(worker, "duecourse_stage_transitions_total", to="PAID") == 1
    assert total(worker, "duecourse_payments_total", currency="CNY") == 1
    assert total(worker, "duecourse_recovered_minor_units_total", currency="CNY") == 100000
    assert total(worker, "duecourse_messages_total", outcome="sent") >= 1
    # the SDK's own series, through the same runtime
    names = {name.removesuffix("_bucket") for name, _, _ in samples(worker)}
    assert set(SDK_SERIES) <= names, set(SDK_SERIES) - names
    assert "loan_id" not in worker and loan not in worker  # no loan ids in labels

    api = (await stack.http.get("/metrics")).text
    assert total(api, "duecourse_api_requests_total", method="POST",
                 route="/v1/loans/{loan_id}/payments", status="202") == 1
    assert total(api, "duecourse_api_requests_total", method="POST", route="/v1/loans",
                 status="201") == 1
    assert total(api, "duecourse_api_request_duration_seconds_count", method="POST",
                 route="/v1/loans", status="201") == 1
    assert loan not in api  # templates, never raw paths
    assert total(api, "duecourse_alerts_open") == 0
    assert [n for n, _, _ in samples(api) if n == "duecourse_loans_needing_attention"]


@pytest.mark.devserver
async def test_activity_failures_and_alerts_are_counted_by_type(stack: Stack) -> None:
    """A scorer that breaks once the loan has a payment fails `score_loan` (a real
    failure, not a mock): it counts by activity and error type, the ops alert it raises
    counts and shows as open; a payment repeated by reference counts once."""
    now = datetime.now(UTC)
    body = make_loan(now, dpd=3, outstanding="500.00", tz=daytime_zone(now)).model_dump(
        mode="json")
    loan = body["loan_id"] = f"L-wont_pay-{uuid4().hex[:6]}"
    auth = {"Authorization": f"Bearer {stack.token}"}
    assert (await stack.http.post("/v1/loans", json=body, headers=auth)).status_code == 201
    pay = {"reference": "PART-1", "amount": "200.00"}
    assert (await stack.http.post(f"/v1/loans/{loan}/payments", headers=auth,
                                  json=pay)).status_code == 202

    async def alerted() -> bool:
        return bool(await stack.ledger.rows(t.ops_alerts, loan_id=loan))

    await eventually(alerted, "the scoring failure's ops alert")
    again = await stack.http.post(f"/v1/loans/{loan}/payments", headers=auth, json=pay)
    assert again.status_code == 200, again.text
    worker = await stack.worker_scrape()
    assert total(worker, "duecourse_activity_failures_total", activity_type="score_loan",
                 error_type="ScorerError") == 1
    assert total(worker, "duecourse_alerts_raised_total") == 1
    assert total(worker, "duecourse_payments_total", currency="CNY") == 1
    assert total(worker, "duecourse_recovered_minor_units_total", currency="CNY") == 20000
    api = (await stack.http.get("/metrics")).text
    assert total(api, "duecourse_alerts_open") == 1
    assert total(api, "duecourse_api_requests_total", route="/v1/loans/{loan_id}/payments",
                 status="200") == 1


async def test_a_retried_batch_counts_only_what_the_ledger_wrote_new(ledger: Ledger) -> None:
    """`record_entries` run twice with one batch (a retry after its commit) counts each
    fact once; promises, agreements and blocked or deferred contacts by their labels."""
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    now = datetime.now(UTC)
    loan = make_loan(now, dpd=3)
    opened = OpenLoan(case_id="case-1", workflow_id=loan.workflow_id, loan=loan,
                      policy="standard@1", opened_at=now)
    assert await ledger.open_case(opened)
    decided = {"occurred_at": now, "actor": SYSTEM, "step": "reminder", "channel": "sms",
               "recipient": "+8613800138000", "recipient_kind": "debtor",
               "purpose": "collection", "proposed_at": now}
    batch = RecordEntries(case_id="case-1", workflow_id=loan.workflow_id,
                          loan_id=loan.loan_id, entries=[
        StageChanged(key="stage:1", occurred_at=now, actor=SYSTEM, from_stage=None,
                     to_stage="REMINDER", reason="handed over", days_past_due=3),
        PaymentRecorded(key="payment:R1", occurred_at=now, actor=SYSTEM, reference="R1",
                        amount=Decimal("120.50"), currency="CNY", paid_at=now,
                        applied=Decimal("100.25"), overpaid=Decimal("20.25"),
                        outstanding_after=Decimal("0.00")),
        PromiseRecorded(key="promise:P1:ACTIVE", occurred_at=now, actor=SYSTEM,
                        promise_id="P1", amount=Decimal("50"), currency="CNY",
                        due_date=now.date(), status="ACTIVE"),
        PromiseRecorded(key="promise:P1:KEPT", occurred_at=now, actor=SYSTEM,
                        promise_id="P1", amount=Decimal("50"), currency="CNY",
                        due_date=now.date(), status="KEPT"),
        PromiseRecorded(key="promise:P2:BROKEN", occurred_at=now, actor=SYSTEM,
                        promise_id="P2", amount=Decimal("30"), currency="CNY",
                        due_date=now.date(), status="BROKEN"),
        AgreementRecorded(key="agreement:S1:1", occurred_at=now, actor=SYSTEM,
                          agreement_id="S1", agreement_type="settlement",
                          status="PENDING_APPROVAL", amount=Decimal("80"), currency="CNY",
                          version=1),
        AgreementRecorded(key="agreement:S1:2", occurred_at=now, actor=SYSTEM,
                          agreement_id="S1", agreement_type="settlement",
                          status="PENDING_APPROVAL", amount=Decimal("75"), currency="CNY",
                          version=2),
        ComplianceDecided(key="decision:1", verdict="blocked", code="opted_out", **decided),
        ComplianceDecided(key="decision:2", verdict="deferred", code="quiet_hours",
                          **decided),
        ComplianceDecided(key="decision:3", verdict="allowed", **decided),
    ])
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    activities = LedgerActivities(ledger, load_scorer("duecourse.domain.scoring:scorecard"))
    assert await env.run(activities.record_entries, batch) == 10
    assert await env.run(activities.record_entries, batch) == 0

    async with httpx.AsyncClient() as scraper:
        text = (await scraper.get(f"http://127.0.0.1:{port}/metrics")).text
    assert total(text, "duecourse_stage_transitions_total", **{"from": "none"},
                 to="REMINDER") == 1
    assert total(text, "duecourse_payments_total", currency="CNY") == 1
    assert total(text, "duecourse_recovered_minor_units_total", currency="CNY") == 10025
    assert total(text, "duecourse_promises_total", status="made") == 1
    assert total(text, "duecourse_promises_total", status="kept") == 1
    assert total(text, "duecourse_promises_total", status="broken") == 1
    assert total(text, "duecourse_agreements_total", type="settlement",
                 status="PENDING_APPROVAL") == 1  # its second version is no new outcome
    assert total(text, "duecourse_messages_total", channel="sms", outcome="blocked",
                 rule="opted_out") == 1
    assert total(text, "duecourse_messages_total", channel="sms", outcome="deferred",
                 rule="quiet_hours") == 1
    assert total(text, "duecourse_messages_total", outcome="allowed") == 0

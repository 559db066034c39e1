"""The REST API against a real worker and the real Temporal dev server (no mocks)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from duecourse import search_attributes as sa
from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.domain.calendar import local_date
from duecourse.domain.loan import LoanIntake
from duecourse.policies import load_policy
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from duecourse.store.owners import LoanOwners
from duecourse.temporal.client import CollectionClient
from tests.conftest import settings_for_tests
from tests.factories import daytime_zone, make_loan
from tests.support.sealing import sealed
from tests.support.waiting import eventually

pytestmark = pytest.mark.devserver
TEMPORAL = Path(sys.executable).parent / "temporal"


@dataclass
class Api:
    http: httpx.AsyncClient
    keys: dict[str, str]
    ledger: Ledger
    client: CollectionClient

    async def call(self, method: str, path: str, role: str | None = None,
                   **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        headers.update(kwargs.pop("headers", {}))
        return await self.http.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL), search_attributes=sa.ALL,
        data_converter=sealed())
    engine = connect(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('api') / 'ledger.db'}")
    await migrate(engine)
    ledger, keys = Ledger(engine), KeyStore(engine)
    queue = f"api-{uuid4().hex}"
    settings: Settings = settings_for_tests()
    client = CollectionClient(env.client, queue)
    services = Services(client=client, ledger=ledger, keys=keys, settings=settings)
    tokens = {role: (await keys.create(f"{role}-1", role))[1]
              for role in ("platform", "agent", "supervisor", "ops")}
    app = create_app(settings, services)
    async with build_worker(env.client, ledger, settings, queue), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield Api(http, tokens, ledger, client)
    await engine.dispose()
    await env.shutdown()


def loan_body(**kwargs: Any) -> dict[str, Any]:
    return make_loan(datetime.now(UTC), **kwargs).model_dump(mode="json")


def problem(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    for word in words:
        assert word in body["detail"], body


async def test_start_is_idempotent_and_status_answers(api: Api) -> None:
    body = loan_body(dpd=3, policy="demo")
    first = await api.call("POST", "/v1/loans", "platform", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "started"
    assert first.headers["location"] == f"/v1/loans/{body['loan_id']}"
    again = await api.call("POST", "/v1/loans", "platform", json=body)
    assert again.status_code == 200 and again.json()["status"] == "already_running"
    assert again.json()["run_id"] == first.json()["run_id"]
    status = await api.call("GET", f"/v1/loans/{body['loan_id']}", "ops")
    assert status.status_code == 200 and status.json()["stage"] == "REMINDER"
    # the loan's events now go to this platform's webhooks only
    assert await LoanOwners(api.ledger.engine).owner_of(body["loan_id"]) == "platform-1"


async def test_a_platform_sees_and_acts_on_its_own_loans_only(api: Api) -> None:
    body = loan_body(dpd=3)
    loan = body["loan_id"]
    assert (await api.call("POST", "/v1/loans", "platform", json=body)).status_code == 201
    _, token = await KeyStore(api.ledger.engine).create(f"platform-{uuid4().hex[:8]}",
                                                        "platform")
    other = {"Authorization": f"Bearer {token}"}
    for method, path, payload in [
            ("GET", f"/v1/loans/{loan}", None),
            ("GET", f"/v1/loans/{loan}/timeline", None),
            ("POST", f"/v1/loans/{loan}/payments", {"reference": "X-1", "amount": "10.00"}),
            ("POST", f"/v1/loans/{loan}/cancel", {"reason": "not yours"})]:
        problem(await api.http.request(method, path, headers=other, json=payload), 404,
                loan)
    problem(await api.http.post("/v1/loans", headers=other, json=body), 409,
            "another platform")
    batch = (await api.http.post("/v1/loans:batch", headers=other,
                                 json={"loans": [body]})).json()
    assert batch["rejected"] == 1 and "another platform" in batch["results"][0]["reason"]
    async def found_by(headers: dict[str, str]) -> bool:
        page = (await api.http.get("/v1/loans?page_size=100&jurisdiction=CN",
                                   headers=headers)).json()
        return any(item["loan_id"] == loan for item in page["loans"])

    owner = {"Authorization": f"Bearer {api.keys['platform']}"}
    await eventually(lambda: found_by(owner), "the owner's search to list the loan")
    assert not await found_by(other), "another platform's search must not list it"
    status = await api.call("GET", f"/v1/loans/{loan}", "platform")  # the owner still can
    assert status.status_code == 200 and status.json()["outcome"] is None
    assert (await api.call("GET", f"/v1/loans/{loan}", "ops")).status_code == 200
    assert await LoanOwners(api.ledger.engine).owner_of(loan) == "platform-1"


async def test_handing_over_the_id_of_a_lenders_loan_does_not_take_it(api: Api) -> None:
    body = loan_body(dpd=3)
    loan = LoanIntake.model_validate(body)
    assert (await api.client.start(loan, load_policy("standard"))).started  # the lender's
    again = await api.call("POST", "/v1/loans", "platform", json=body)
    assert again.status_code == 200 and again.json()["status"] == "already_running"
    batch = (await api.call("POST", "/v1/loans:batch", "platform",
                            json={"loans": [body]})).json()
    assert batch["already_running"] == 1
    assert await LoanOwners(api.ledger.engine).owner_of(loan.loan_id) is None


async def test_key_names_are_a_safe_alphabet(api: Api) -> None:
    """Key names become actors, loan owners and visibility-query values: no quotes."""
    keys = KeyStore(api.ledger.engine)
    for bad in ("", "o'hara", "a b", "x" * 65, "-lead", "p') OR ('1'='1"):
        with pytest.raises(ValueError, match="key name"):
            await keys.create(bad, "platform")


async def test_payments_are_idempotent_by_reference(api: Api) -> None:
    body = loan_body(dpd=3)
    await api.call("POST", "/v1/loans", "platform", json=body)
    loan = body["loan_id"]
    pay = {"reference": "PAY-1", "amount": "400.00"}
    assert (await api.call("POST", f"/v1/loans/{loan}/payments", "platform",
                           json=pay)).status_code == 202

    async def applied() -> bool:
        return bool(await api.ledger.rows(t.payments, loan_id=loan))

    await eventually(applied, "the payment in the ledger")
    repeat = await api.call("POST", f"/v1/loans/{loan}/payments", "platform", json=pay)
    assert repeat.status_code == 200 and repeat.json()["status"] == "duplicate"
    status = (await api.call("GET", f"/v1/loans/{loan}", "agent")).json()
    assert status["outstanding"] == {"amount": "600.00", "currency": "CNY"}
    problem(await api.call("POST", f"/v1/loans/{loan}/payments", "platform",
                           json={"reference": "PAY-2", "amount": "1.00", "currency": "USD"}),
            422, "the loan is in CNY, not USD")


async def test_refusals_and_errors_are_problems(api: Api) -> None:
    body = loan_body(dpd=3)
    await api.call("POST", "/v1/loans", "platform", json=body)
    loan = body["loan_id"]
    due = (local_date(datetime.now(UTC), "Asia/Shanghai") + timedelta(days=3)).isoformat()
    problem(await api.call("POST", f"/v1/loans/{loan}/promises", "agent",
                           json={"amount": "5000.00", "due_date": due}),
            422, "exceeds the outstanding balance")
    promised = await api.call("POST", f"/v1/loans/{loan}/promises", "agent",
                              json={"amount": "300.00", "due_date": due})
    assert promised.status_code == 201 and promised.json()["promise_id"] == "P1"

    async def recorded() -> bool:
        return bool(await api.ledger.rows(t.promises, loan_id=loan))

    await eventually(recorded, "the promise in the ledger")
    row = (await api.ledger.rows(t.promises, loan_id=loan))[0]
    assert (row["actor_kind"], row["actor_id"]) == ("agent", "agent-1"), "the key acted"
    problem(await api.call("GET", "/v1/loans/NO-SUCH-LOAN", "ops"), 404, "NO-SUCH-LOAN")
    invalid = await api.call("POST", f"/v1/loans/{loan}/promises", "agent",
                             json={"amount": "abc", "due_date": due})
    problem(invalid, 422, "amount")
    assert invalid.json()["errors"][0]["loc"][-1] == "amount"
    problem(await api.call("POST", "/v1/loans", "platform", json={**body, "currency": "ZZZ"}),
            422, "unknown currency 'ZZZ'")
    not_due = loan_body(dpd=0)
    problem(await api.call("POST", "/v1/loans", "platform", json=not_due), 422, "not overdue")
    for huge in ("1e400", "123456789012345678901234567890"):  # used to answer 500
        problem(await api.call("POST", "/v1/loans", "platform",
                               json={**body, "principal": huge}), 422, "too large")
    problem(await api.call("GET", f"/v1/loans/{loan}"), 401)
    problem(await api.call("GET", f"/v1/loans/{loan}", headers={"Authorization": "Bearer x"}),
            401, "unknown or revoked")
    problem(await api.call("POST", f"/v1/loans/{loan}/legal/approval", "agent",
                           json={"approve": True, "reason": "x"}), 403, "supervisor")

    cancelled = await api.call("POST", f"/v1/loans/{loan}/cancel", "platform",
                               json={"reason": "restructured"})
    assert cancelled.status_code == 202
    await api.client.result(loan)
    problem(await api.call("POST", f"/v1/loans/{loan}/payments", "platform",
                           json={"reference": "LATE", "amount": "1.00"}), 409, "ended")


async def test_batch_reports_every_row(api: Api) -> None:
    existing = loan_body(dpd=2)
    await api.call("POST", "/v1/loans", "platform", json=existing)
    fresh = loan_body(dpd=5)
    bad = {**loan_body(dpd=5), "borrower": {**fresh["borrower"], "phones": ["12"]}}
    response = await api.call("POST", "/v1/loans:batch", "platform",
                              json={"loans": [fresh, existing, bad]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["started"], result["already_running"], result["rejected"]) == (1, 1, 1)
    rows = {r["index"]: r for r in result["results"]}
    assert rows[1]["status"] == "started" and rows[2]["status"] == "already_running"
    assert rows[3]["status"] == "rejected" and "malformed phone number" in rows[3]["reason"]
    owners = LoanOwners(api.ledger.engine)
    assert await owners.owner_of(fresh["loan_id"]) == "platform-1"
    assert await owners.owner_of(bad["loan_id"]) is None


async def test_search_timeline_tasks_and_portfolio(api: Api) -> None:
    # A real-time server: the borrower must be in contact hours now, whenever CI runs.
    body = loan_body(dpd=4, policy="demo", tz=daytime_zone(datetime.now(UTC)))
    await api.call("POST", "/v1/loans", "platform", json=body)
    loan = body["loan_id"]

    async def listed() -> bool:
        page = (await api.call("GET", "/v1/loans?stage=REMINDER&jurisdiction=CN&page_size=100",
                               "ops")).json()
        return any(item["loan_id"] == loan for item in page["loans"])

    await eventually(listed, "the loan in the visibility search")
    engaged = await api.call("POST", f"/v1/loans/{loan}/contact-outcomes", "agent",
                             json={"channel": "voice", "result": "reached"})
    assert engaged.status_code == 202

    async def tasked() -> bool:
        tasks = (await api.call("GET", f"/v1/tasks?loan_id={loan}", "agent")).json()["tasks"]
        return any(x["kind"] == "call_borrower" for x in tasks)

    await eventually(tasked, "the agent call task (demo policy: 5 s)")
    task = (await api.call("GET", f"/v1/tasks?loan_id={loan}", "agent")).json()["tasks"][0]
    done = await api.call("POST", f"/v1/tasks/{task['task_id']}/complete", "agent",
                          json={"outcome": "no_answer"})
    assert done.status_code == 200 and done.json()["outcome"] == "no_answer"
    problem(await api.call("POST", "/v1/tasks/NOPE/complete", "agent",
                           json={"outcome": "reached"}), 404)
    first = (await api.call("GET", f"/v1/loans/{loan}/timeline?limit=2", "ops")).json()
    assert len(first["items"]) == 2 and first["next_offset"] == 2
    second = (await api.call("GET", f"/v1/loans/{loan}/timeline?limit=2&offset=2",
                             "ops")).json()
    assert second["items"][0] != first["items"][0]
    summary = (await api.call("GET", "/v1/portfolio/summary", "ops")).json()
    assert summary["open_by_stage"].get("NEGOTIATION", 0) >= 1
    assert any(a["currency"] == "CNY" for a in summary["outstanding"])
    problem(await api.call("GET", "/v1/portfolio/summary", "agent"), 403)


ROLES = ("platform", "agent", "supervisor", "ops")
DESK = {"agent", "supervisor"}
MATRIX: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/v1/loans", None, set(ROLES)),
    ("GET", "/v1/loans/{loan}", None, set(ROLES)),
    ("GET", "/v1/loans/{loan}/timeline", None, set(ROLES)),
    ("POST", "/v1/loans:batch", {"loans": [{}]}, {"platform"}),
    ("POST", "/v1/loans/{loan}/payments", {"reference": "M-1", "amount": "1.00"},
     {"platform"}),
    ("POST", "/v1/loans/{loan}/promises", {"amount": "1.00", "due_date": "{due}"}, DESK),
    ("POST", "/v1/loans/{loan}/plans",
     {"instalments": [{"due_date": "{due}", "amount": "1.00"}]}, DESK),
    ("POST", "/v1/loans/{loan}/settlements", {"amount": "1.00", "pay_by": "{due}"}, DESK),
    ("POST", "/v1/loans/{loan}/settlements/decision", {"approve": True, "reason": "r"},
     {"supervisor"}),
    ("POST", "/v1/loans/{loan}/disputes", {"action": "verified", "reason": "r"}, DESK),
    ("POST", "/v1/loans/{loan}/holds", {"action": "end", "kind": "hardship"}, DESK),
    ("POST", "/v1/loans/{loan}/contact-preferences", {"opt_in": ["sms"]}, DESK),
    ("POST", "/v1/loans/{loan}/contact-outcomes",
     {"channel": "voice", "result": "no_answer"}, DESK),
    ("POST", "/v1/loans/{loan}/legal/approval", {"approve": True, "reason": "r"},
     {"supervisor"}),
    ("POST", "/v1/loans/{loan}/legal/events", {"kind": "filed", "occurred_on": "{due}"},
     {"supervisor", "ops"}),
    ("POST", "/v1/loans/{loan}/assignment", {"agent_id": "agent-1"}, DESK | {"ops"}),
    ("GET", "/v1/tasks", None, DESK | {"ops"}),
    ("POST", "/v1/tasks/T-1/complete", {"outcome": "reached"}, DESK),
    ("GET", "/v1/portfolio/summary", None, {"supervisor", "ops"}),
    ("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, {"platform"}),
    ("GET", "/v1/webhooks", None, {"platform", "ops"}),
    ("DELETE", "/v1/webhooks/wh_nope", None, {"platform"}),
    ("POST", "/v1/loans/{loan}/cancel", {"reason": "r"}, {"platform", "ops"}),
    ("POST", "/v1/loans", {}, {"platform"}),
]


async def test_every_endpoint_admits_exactly_its_roles(api: Api) -> None:
    body = loan_body(dpd=3)
    await api.call("POST", "/v1/loans", "platform", json=body)
    due = (local_date(datetime.now(UTC), "Asia/Shanghai") + timedelta(days=3)).isoformat()

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{loan}", body["loan_id"]).replace("{due}", due)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    for method, path, payload, allowed in MATRIX:
        url, json_body = fill(path), fill(payload)
        anonymous = await api.call(method, url, json=json_body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        for role in ROLES:
            answer = await api.call(method, url, role, json=json_body)
            assert answer.status_code < 500, (method, path, role, answer.text)
            assert (answer.status_code == 403) == (role not in allowed), (
                method, path, role, answer.status_code, answer.text)


async def test_webhooks_are_registered_listed_and_disabled(api: Api) -> None:
    created = await api.call("POST", "/v1/webhooks", "platform",
                             json={"url": "https://platform.example/hooks",
                                   "events": ["loan.paid", "loan.settled"]})
    assert created.status_code == 201, created.text
    hook = created.json()
    assert len(hook["secret"]) >= 32 and hook["owner"] == "platform-1"
    listed = (await api.call("GET", "/v1/webhooks", "platform")).json()["webhooks"]
    assert hook["webhook_id"] in {h["webhook_id"] for h in listed}
    assert all("secret" not in h for h in listed), "the secret is shown once"
    problem(await api.call("POST", "/v1/webhooks", "platform",
                           json={"url": "ftp://x", "events": ["*"]}), 422, "http(s)")
    problem(await api.call("POST", "/v1/webhooks", "platform",
                           json={"url": "https://x.example", "events": ["loan.eaten"]}),
            422, "unknown event type")
    gone = await api.call("DELETE", f"/v1/webhooks/{hook['webhook_id']}", "platform")
    assert gone.status_code == 204
    problem(await api.call("DELETE", f"/v1/webhooks/{hook['webhook_id']}", "platform"), 404)

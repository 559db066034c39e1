"""The API's edges: the flat hand-over shape, sentences instead of pydantic's messages, and
hostile bodies that must never reach a 5xx (real app, real dev server, real ledger)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.domain.calendar import local_date
from duecourse.intake import FLAT_COLUMNS
from duecourse.settings import Settings
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.conftest import settings_for_tests
from tests.support.waiting import eventually
from tests.test_api import Api, api, loan_body, problem

__all__ = ["api"]  # the module-scoped fixture: one dev server and worker for this module
pytestmark = pytest.mark.devserver

RAW = re.compile(r"should|Field required|Extra inputs|not permitted|Value error|valid "
                 r"dictionary|JSON decode error|error parsing the body|\^\[|\{0,|Input ")
"""Pydantic's and Starlette's own phrasing, and regular expressions: never shown."""


def sentence(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """A problem whose detail (and every error's msg) is plain words containing `words`."""
    problem(response, status, *words)
    body: dict[str, Any] = response.json()
    shown = [body["detail"], *(e["msg"] for e in body.get("errors", []))]
    assert not [s for s in shown if RAW.search(s)], body
    return body


def flat_body(dpd: int = 3, **columns: Any) -> dict[str, Any]:
    """A loan as a row of the CSV hand-over file, as JSON."""
    nested = loan_body(dpd=dpd)
    b = nested["borrower"]
    return {"loan_id": nested["loan_id"], "borrower_id": b["borrower_id"],
            "borrower_name": b["name"], "phones": "+8613800138000;+862161234567",
            "email": b["email"], "address": b["address"], "timezone": b["timezone"],
            "language": "zh-CN", "jurisdiction": "CN", "currency": "CNY",
            "principal": "5000.00", "outstanding": "1250.50", "days_past_due": dpd,
            "product": "instalment", **columns}


async def test_a_flat_loan_is_handed_over_like_a_csv_row(api: Api) -> None:
    body = flat_body(dpd=4)
    started = await api.call("POST", "/v1/loans", "platform", json=body)
    assert started.status_code == 201, started.text
    assert started.json()["status"] == "started"
    status = (await api.call("GET", f"/v1/loans/{body['loan_id']}", "ops")).json()
    assert status["days_past_due"] == 4
    assert status["outstanding"] == {"amount": "1250.50", "currency": "CNY"}
    again = await api.call("POST", "/v1/loans", "platform", json=body)
    assert again.status_code == 200 and again.json()["status"] == "already_running"
    dated = flat_body(dpd=2)
    due = local_date(datetime.now(UTC), "Asia/Shanghai") - timedelta(days=2)
    dated = {k: v for k, v in dated.items() if k != "days_past_due"} | {
        "due_date": due.isoformat(), "principal": 5000, "phones": ["+8613800138000"]}
    assert (await api.call("POST", "/v1/loans", "platform", json=dated)).status_code == 201


async def test_a_body_with_both_shapes_or_neither_gets_a_sentence(api: Api) -> None:
    nested = loan_body(dpd=3)
    sentence(await api.call("POST", "/v1/loans", "platform",
                            json={**nested, "borrower_name": "Li Wei"}),
             422, "either as a nested 'borrower' object or as flat columns, not both")
    neither = {k: v for k, v in nested.items() if k != "borrower"}
    sentence(await api.call("POST", "/v1/loans", "platform", json=neither),
             422, "no borrower", "borrower_id")
    both_dates = flat_body(due_date="2026-01-01")
    sentence(await api.call("POST", "/v1/loans", "platform", json=both_dates),
             422, "either due_date or days_past_due")
    sentence(await api.call("POST", "/v1/loans", "platform", json=[nested]),
             422, "the request body must be a JSON object")
    sentence(await api.call("POST", "/v1/loans", "platform", json={**nested, "colour": 1}),
             422, "unknown field", "colour")


async def test_the_batch_takes_flat_rows_and_names_each_rows_problem(api: Api) -> None:
    flat, nested = flat_body(dpd=5), loan_body(dpd=5)
    neither = {k: v for k, v in nested.items() if k != "borrower"}
    bad = flat_body(principal="-5")
    response = await api.call("POST", "/v1/loans:batch", "platform",
                              json={"loans": [flat, neither, [1, 2], bad]})
    assert response.status_code == 200, response.text
    rows = {r["index"]: r for r in response.json()["results"]}
    assert rows[1]["status"] == "started", rows
    assert rows[2]["status"] == "rejected" and "no borrower" in rows[2]["reason"]
    assert rows[2]["loan_id"] == nested["loan_id"]
    assert rows[3]["status"] == "rejected" and "expected an object" in rows[3]["reason"]
    assert rows[4]["reason"] == "principal must be greater than 0", rows[4]


HAND_OVER = ("POST", "/v1/loans", "platform")
PAY = ("POST", "/v1/loans/L-1/payments", "platform")
REF = {"reference": "R-1", "amount": "1.00"}
"""A valid payment body, for the cases that spoil one field of it."""
CASES: list[tuple[str, str, str, Any, int, tuple[str, ...]]] = [
    (*HAND_OVER, {"principal": "-5"}, 422, ("principal must be greater than 0",)),
    (*HAND_OVER, {"outstanding": "abc"}, 422,
     ("outstanding must be a decimal amount like 1250.50",)),
    (*HAND_OVER, {"loan_id": "bad id!"}, 422, ("loan_id must be 1 to 64 letters, digits",)),
    (*HAND_OVER, {"currency": None}, 422, ("currency is required",)),
    (*HAND_OVER, {"principal": "1e400"}, 422, ("principal is too large: at most 15 digits",)),
    (*HAND_OVER, {"due_date": "tomorrow"}, 422, ("due_date must be a date like 2025-06-30",)),
    (*HAND_OVER, {"policy": "Standard Policy"}, 422, ("policy must be",)),
    (*PAY, {**REF, "amount": "1e400"}, 422, ("amount must be a decimal amount like 1250.50",)),
    (*PAY, {**REF, "amount": "123456789012345678901234567890"}, 422,
     ("amount is too large: at most 15 digits before the decimal point, got 30",)),
    (*PAY, {**REF, "amount": 12.5}, 422,
     ('amount must be a decimal amount in a JSON string, like "1250.50"',)),
    (*PAY, {"amount": "1.00"}, 422, ("reference is required",)),
    (*PAY, {**REF, "reference": "R 1"}, 422, ("reference must be 1 to 128",)),
    (*PAY, {**REF, "currency": "usd$"}, 422,
     ("currency must be a three-letter currency code like USD",)),
    (*PAY, {**REF, "colour": "red"}, 422, ("colour is not a field this request accepts",)),
    (*PAY, [1, 2], 422, ("the request body must be a JSON object, not an array",)),
    ("POST", "/v1/loans/L-1/disputes", "agent", {"action": "x", "reason": "r"}, 422,
     ("action must be 'opened' or 'verified'",)),
    ("POST", "/v1/loans/L-1/disputes", "agent", {"action": "opened", "reason": ""}, 422,
     ("reason may not be empty",)),
    ("POST", "/v1/loans/L-1/plans", "agent", {"instalments": []}, 422,
     ("instalments must have at least 1 item",)),
    ("POST", "/v1/loans/L-1/holds", "agent", {"action": "start", "kind": "hardship",
                                              "days": 0}, 422,
     ("days must be at least 1",)),
    ("POST", "/v1/loans/L-1/promises", "agent", {"amount": "1.00", "due_date": "2026-13-01"},
     422, ("due_date must be a date like 2025-06-30",)),
    ("GET", "/v1/loans?page_size=0", "ops", None, 422,
     ("the query parameter page_size must be at least 1",)),
    ("GET", "/v1/loans?min_dpd=many", "ops", None, 422,
     ("the query parameter min_dpd must be a whole number",)),
    ("GET", "/v1/loans/bad%20id", "ops", None, 422,
     ("the path parameter loan_id must be 1 to 64 letters",)),
    ("POST", "/v1/loans", "ops", {}, 403, ("an ops key may not do this",)),
    ("GET", "/v1/nowhere", "ops", None, 404, ("/v1/nowhere",)),
]


async def test_every_rejection_is_a_sentence(api: Api) -> None:
    nested = loan_body(dpd=3)
    for method, path, role, payload, status, words in CASES:
        body = {**nested, **payload} if path == "/v1/loans" and payload else payload
        if isinstance(body, dict) and path == "/v1/loans":
            body = {k: v for k, v in body.items() if v is not None}
        answer = await api.call(method, path, role, json=body)
        sentence(answer, status, *words)


async def test_a_payment_of_more_than_15_digits_is_refused_before_the_engine(api: Api) -> None:
    loan = loan_body(dpd=3)
    assert (await api.call("POST", "/v1/loans", "platform", json=loan)).status_code == 201
    for amount in ("1e400", "1000000000000000", "1E+3", "-1.00", " 1.00", "1,000.00"):
        sentence(await api.call("POST", f"/v1/loans/{loan['loan_id']}/payments", "platform",
                                json={"reference": "HUGE", "amount": amount}), 422, "amount")
    sentence(await api.call("POST", f"/v1/loans/{loan['loan_id']}/payments", "platform",
                            json={"reference": "FINE", "amount": "1.001"}),
             422, "amount 1.001 has more decimal places than CNY allows (2)")


HOSTILE: list[tuple[bytes, str, int, tuple[str, ...]]] = [
    (b'{"reference": "R-1", "amount": "1.00\xff"}', "application/json", 400,
     ("not UTF-8", "byte 37")),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, ("nested",)),
    (b'{"a":' * 40 + b"1" + b"}" * 40, "application/json", 400,
     ("nested 40 levels deep", "at most 32")),
    (b'{"amount": 1' + b"0" * 5000 + b"}", "application/json", 400, ("5001 digits",)),
    (b'{"amount": NaN}', "application/json", 400, ("NaN",)),
    (b'{"amount": -Infinity}', "application/json", 400, ("-Infinity",)),
    (b'{"amount": 1e400}', "application/json", 400, ("1e400", "decimal strings")),
    (b'{"reference": "R-1",\x00 "amount": "1.00"}', "application/json", 400,
     ("null byte",)),
    (b'{"reference": "R-1", "amount": "1.00", "note": "a\\u0000b"}', "application/json",
     422, ("note contains a null character",)),
    (b'{"reference": "R-1", "amount": "1.00", "note": "\\ud800"}', "application/json", 422,
     ("note contains an unpaired surrogate",)),
    (b'{"reference": "R-1", "amount": }', "application/json", 400,
     ("not valid JSON", "line 1 column 32")),
    (b'{"reference": "R-1", "amount": "1.00"}', "text/plain", 422,
     ("Content-Type: application/json",)),
    (b"", "application/json", 422, ("the request body is required",)),
]


async def test_hostile_bodies_get_a_4xx_saying_what_was_wrong(api: Api) -> None:
    loan = loan_body(dpd=3)
    assert (await api.call("POST", "/v1/loans", "platform", json=loan)).status_code == 201
    for path in (f"/v1/loans/{loan['loan_id']}/payments", "/v1/loans", "/v1/loans:batch"):
        for content, media, status, words in HOSTILE:
            answer = await api.call("POST", path, "platform", content=content,
                                    headers={"content-type": media})
            sentence(answer, status, *words)
    payments = await api.ledger.rows(t.payments, loan_id=loan["loan_id"])
    assert payments == [], "no hostile body reached the workflow"


async def _stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_bodies_beyond_the_limit_are_refused_with_413(api: Api) -> None:
    big = json.dumps({"loans": [loan_body(dpd=3)] * 2500}).encode()
    assert len(big) > 1024 * 1024
    body = sentence(await api.call("POST", "/v1/loans:batch", "platform", content=big,
                                   headers={"content-type": "application/json"}),
                    413, "at most 1 MiB", "DUECOURSE_MAX_BODY_BYTES")
    assert body["title"] == "Body too large"
    streamed = await api.call("POST", "/v1/loans:batch", "platform",
                              content=_stream([big[:700_000], big[700_000:]]),
                              headers={"content-type": "application/json"})
    sentence(streamed, 413, "at most 1 MiB")
    small = Settings(**{**settings_for_tests().model_dump(), "max_body_bytes": 2048})
    app = create_app(small, Services(client=api.client, ledger=api.ledger,
                                     keys=KeyStore(api.ledger.engine), settings=small))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        answer = await http.post("/v1/loans:batch", json={"loans": [loan_body()] * 5},
                                 headers={"Authorization": f"Bearer {api.keys['platform']}"})
        sentence(answer, 413, "at most 2 KiB")


async def test_a_repeated_payment_is_a_duplicate_even_once_it_closed_the_loan(api: Api) -> None:
    body = loan_body(dpd=3)
    loan = body["loan_id"]
    assert (await api.call("POST", "/v1/loans", "platform", json=body)).status_code == 201
    pay = {"reference": "PAID-IN-FULL", "amount": "1000.00"}
    first = await api.call("POST", f"/v1/loans/{loan}/payments", "platform", json=pay)
    assert first.status_code == 202, first.text
    await api.client.result(loan)

    async def recorded() -> bool:
        return bool(await api.ledger.rows(t.payments, loan_id=loan))

    await eventually(recorded, "the payment in the ledger")
    repeat = await api.call("POST", f"/v1/loans/{loan}/payments", "platform", json=pay)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == {"status": "duplicate", "detail": "payment PAID-IN-FULL was "
                             "already recorded; nothing changed"}
    sentence(await api.call("POST", f"/v1/loans/{loan}/payments", "platform",
                            json={"reference": "AFTER", "amount": "1.00"}), 409, "ended")


async def test_the_docs_describe_both_shapes_and_every_pattern_in_words(api: Api) -> None:
    from duecourse.api.schemas import FlatLoan
    from duecourse.plain_words import PATTERN_WORDS

    assert set(FlatLoan.model_fields) == set(FLAT_COLUMNS), "FlatLoan is the CSV row"
    spec = (await api.http.get("/openapi.json")).json()
    body = spec["paths"]["/v1/loans"]["post"]["requestBody"]["content"]["application/json"]
    shapes = {s["$ref"].rsplit("/", 1)[-1] for s in body["schema"]["anyOf"]}
    assert shapes == {"LoanIntake", "FlatLoan"}
    assert {"nested", "flat"} <= set(body["examples"])
    batch = spec["components"]["schemas"]["BatchRequest"]["properties"]["loans"]["items"]
    assert {s["$ref"].rsplit("/", 1)[-1] for s in batch["anyOf"]} == shapes

    patterns: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                patterns.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert patterns and patterns <= set(PATTERN_WORDS), patterns - set(PATTERN_WORDS)


async def test_a_demonstration_policy_never_starts_a_real_loan(api: Api) -> None:
    """The bundled demo policy compresses the law's waiting periods and hours: outside a
    sandbox (DUECOURSE_ALLOW_DEMO_POLICIES) a platform asking for it is refused."""
    real = Settings(**{**settings_for_tests().model_dump(), "allow_demo_policies": False})
    app = create_app(real, Services(client=api.client, ledger=api.ledger,
                                    keys=KeyStore(api.ledger.engine), settings=real))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        auth = {"Authorization": f"Bearer {api.keys['platform']}"}
        one = await http.post("/v1/loans", json=loan_body(dpd=3, policy="demo"), headers=auth)
        sentence(one, 422, "for demonstrations only", "DUECOURSE_ALLOW_DEMO_POLICIES")
        many = await http.post("/v1/loans:batch", headers=auth, json={"loans": [
            loan_body(dpd=3, policy="demo"), loan_body(dpd=3, policy="standard")]})
        assert many.status_code == 200, many.text
        rows = {r["status"]: r for r in many.json()["results"]}
        assert "for demonstrations only" in rows["rejected"]["reason"]
        assert "started" in rows


async def test_the_search_pages_through_every_loan_once_and_refuses_a_forged_token(
        api: Api) -> None:
    bodies = [loan_body(dpd=3) for _ in range(2)]
    for body in bodies:
        assert (await api.call("POST", "/v1/loans", "platform", json=body)).status_code == 201
    mine = {b["loan_id"] for b in bodies}

    async def paged() -> list[str]:
        seen: list[str] = []
        token: str | None = None
        while True:
            query = "/v1/loans?page_size=1" + (f"&page_token={token}" if token else "")
            page = (await api.call("GET", query, "platform")).json()
            assert len(page["loans"]) <= 1
            seen += [loan["loan_id"] for loan in page["loans"]]
            token = page["next_page_token"]
            if token is None:
                return seen

    async def all_listed() -> bool:
        return mine <= set(await paged())

    await eventually(all_listed, "both loans in the visibility search")
    seen = await paged()
    assert len(seen) == len(set(seen)), "no loan on two pages"
    listed = (await api.call("GET", "/v1/loans?page_size=100", "platform")).json()["loans"]
    one = next(loan for loan in listed if loan["loan_id"] in mine)
    assert set(one) == {"loan_id", "workflow_id", "status", "stage", "outcome",
                        "days_past_due", "outstanding", "jurisdiction", "segment",
                        "assigned_agent", "started_at"}, "the summary, not the index row"
    assert one["workflow_id"] == f"collection-{one['loan_id']}" and one["status"] == "RUNNING"
    assert one["outstanding"] in (None, "1000.00"), "as indexed, once the workflow has"
    for forged in ("a", "Zm9yZ2Vk"):  # not base64; base64 of b"forged"
        sentence(await api.call("GET", f"/v1/loans?page_token={forged}", "platform"),
                 400, "page_token is not valid")

"""The codec server for the Temporal UI: Temporal's codec protocol over the payload codec,
only for keys whose role may read borrower data, with CORS for the UI's origin alone and
an audit row in the ledger for every request. Real parts: the dev server (with its UI),
the project's sealed client, a SQLite ledger, and `duecourse codec-server` as a process."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.security.codec_routes import CodecSettingsError, codec_policy, redact_path
from duecourse.security.payload_keys import new_key_line, parse_keys
from duecourse.settings import Settings
from duecourse.store import Ledger, connect, migrate
from duecourse.store.keys import KeyStore
from duecourse.store.payload_access import PayloadAccess, PayloadAccessLog
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServer, free_port
from tests.factories import make_loan
from tests.support.waiting import eventually

pytestmark = pytest.mark.devserver
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
UI_ORIGIN = "http://localhost:8233"


@dataclass
class Stack:
    tmp: Path
    settings: Settings
    key_lines: str  # the codec's payload keys: an old one and the newest
    old_ring_client: Client  # seals with the old key only, as a worker before rotation did
    server: DevServer
    api: httpx.AsyncClient  # the API app, with /codec mounted
    tokens: dict[str, str]  # by role, plus "revoked"
    key_ids: dict[str, str]
    audit: PayloadAccessLog
    codec_port: int
    ui_endpoint: str


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("codec")
    old, new = new_key_line(), new_key_line()
    url = f"sqlite+aiosqlite:///{tmp / 'ledger.db'}"
    settings = Settings(payload_keys=SecretStr(f"{old}\n{new}"), database_url=url,
                        data_dir=tmp)
    engine = connect(url)
    await migrate(engine)
    keys = KeyStore(engine)
    tokens, key_ids = {}, {}
    for role in ("platform", "agent", "supervisor", "ops", "codec"):
        key, tokens[role] = await keys.create(f"{role}-{uuid4().hex[:6]}", role)
        key_ids[role] = key.key_id
    gone, tokens["revoked"] = await keys.create(f"gone-{uuid4().hex[:6]}", "ops")
    key_ids["revoked"] = gone.key_id
    assert await keys.revoke(gone.name)
    codec_port = free_port()
    ui_endpoint = f"http://127.0.0.1:{codec_port}/codec/ui/{tokens['ops']}"
    async with DevServer(binary=TEMPORAL_CLI, log_file=tmp / "temporal.log",
                         ui_codec_endpoint=ui_endpoint) as server:
        client = await connect_temporal(settings, address=server.address,
                                        ring=parse_keys(old, "the old key"))
        services = Services(client=CollectionClient(client, f"codec-{uuid4().hex}"),
                            ledger=Ledger(engine), keys=keys, settings=settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(
                app=create_app(settings, services)), base_url="http://api") as api:
            yield Stack(tmp, settings, f"{old}\n{new}", client, server, api, tokens,
                        key_ids, PayloadAccessLog(engine), codec_port, ui_endpoint)
    await engine.dispose()


def wire(payloads: list[Payload]) -> dict[str, Any]:
    """Payloads as the UI and `temporal --codec-endpoint` send them (protobuf JSON)."""
    return json_format.MessageToDict(Payloads(payloads=payloads))


def unwire(body: dict[str, Any]) -> list[Payload]:
    return list(json_format.ParseDict(body, Payloads()).payloads)


def plain(*values: Any) -> list[Payload]:
    return [Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(v).encode())
            for v in values]


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def rows_for(stack: Stack, namespace: str) -> list[PayloadAccess]:
    return [r for r in await stack.audit.recent(500) if r.namespace == namespace]


async def test_encode_then_decode_returns_the_original_payloads(stack: Stack) -> None:
    original = plain({"name": "Li Wei", "phone": "+8613800138000"}, [1, 2, 3], "text")
    sealed = await stack.api.post("/codec/encode", json=wire(original),
                                  headers=bearer(stack.tokens["ops"]))
    assert sealed.status_code == 200, sealed.text
    encoded = unwire(sealed.json())
    assert len(encoded) == 3
    assert all(p.metadata["encoding"] == b"binary/encrypted" for p in encoded)
    assert b"Li Wei" not in b"".join(p.data for p in encoded)
    opened = await stack.api.post("/codec/decode", json=sealed.json(),
                                  headers=bearer(stack.tokens["supervisor"]))
    assert opened.status_code == 200, opened.text
    assert unwire(opened.json()) == original
    # a payload that was never sealed (a history from before encryption) passes through
    again = await stack.api.post("/codec/decode", json=wire(original),
                                 headers=bearer(stack.tokens["ops"]))
    assert unwire(again.json()) == original


async def test_the_ui_sees_the_json_the_project_client_sealed_into_a_history(
        stack: Stack) -> None:
    """A workflow input sealed by the project's converter (with the key from before a
    rotation), read raw from the server's history as the UI reads it, then decoded through
    the key-in-path endpoint the UI is given, from the UI's origin."""
    loan = make_loan(datetime.now(UTC))
    handle = await stack.old_ring_client.start_workflow(
        "NoWorkerRunsThis", loan, id=f"codec-{uuid4().hex}", task_queue=f"q-{uuid4().hex}")
    try:
        history = await stack.old_ring_client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace="default", execution=WorkflowExecution(workflow_id=handle.id)))
    finally:
        await handle.terminate()
    sealed = list(history.history.events[0].workflow_execution_started_event_attributes
                  .input.payloads)
    assert b"Li Wei" not in b"".join(p.SerializeToString() for p in sealed)
    namespace = f"ns-{uuid4().hex[:8]}"
    answer = await stack.api.post(
        f"/codec/ui/{stack.tokens['ops']}/decode", json=wire(sealed),
        headers={"Origin": UI_ORIGIN, "X-Namespace": namespace})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == UI_ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"
    (shown,) = answer.json()["payloads"]
    assert base64.b64decode(shown["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(shown["data"])) == loan.model_dump(mode="json")
    (row,) = await rows_for(stack, namespace)
    old_key_id = stack.key_lines.partition(":")[0]
    assert row.allowed and row.status == 200 and row.payload_key_ids == [old_key_id]
    assert row.origin == UI_ORIGIN and row.key_id == stack.key_ids["ops"]


@pytest.mark.parametrize("who", ["nobody", "agent", "platform", "revoked", "forged"])
async def test_decode_is_refused_without_a_key_that_may_read_borrower_data(
        stack: Stack, who: str) -> None:
    sealed = (await stack.api.post("/codec/encode", json=wire(plain({"name": "Li Wei"})),
                                   headers=bearer(stack.tokens["ops"]))).json()
    token = {"nobody": None, "forged": "dc_0123456789abcdef_not-the-secret"}.get(
        who, stack.tokens.get(who))
    headers = bearer(token) if token else {}
    expected = 403 if who in ("agent", "platform") else 401
    for path in ("/codec/decode", "/codec/encode"):
        answer = await stack.api.post(path, json=sealed, headers=headers)
        assert answer.status_code == expected, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "payloads" not in answer.json() and "Li Wei" not in answer.text
    if token:  # the same key in the UI's path is refused the same way
        answer = await stack.api.post(f"/codec/ui/{token}/decode", json=sealed)
        assert answer.status_code == expected and "payloads" not in answer.json()
        assert token not in answer.text  # not even echoed back as the problem's instance
    if who in ("agent", "platform"):
        assert "DUECOURSE_CODEC_ROLES" in answer.json()["detail"]


async def test_a_codec_key_opens_payloads_and_nothing_else(stack: Stack) -> None:
    """The Temporal UI's key sits in the UI's settings for anyone who loads the UI: it may
    decode (audited), and every route of the API refuses it."""
    token = stack.tokens["codec"]
    sealed = (await stack.api.post("/codec/encode", json=wire(plain({"name": "Li Wei"})),
                                   headers=bearer(token))).json()
    opened = await stack.api.post(f"/codec/ui/{token}/decode", json=sealed)
    assert opened.status_code == 200, opened.text
    for method, path in (("GET", "/v1/loans"), ("GET", "/v1/loans/L-1"),
                         ("GET", "/v1/tasks"), ("GET", "/v1/webhooks"),
                         ("GET", "/v1/alerts"), ("GET", "/v1/messages"),
                         ("GET", "/v1/portfolio/summary")):
        refused = await stack.api.request(method, path, headers=bearer(token))
        assert refused.status_code in (401, 403), (path, refused.status_code, refused.text)
        assert "Li Wei" not in refused.text


async def test_a_browser_page_from_another_origin_is_refused(stack: Stack) -> None:
    sealed = wire(plain("x"))
    answer = await stack.api.post("/codec/decode", json=sealed, headers=bearer(
        stack.tokens["ops"], Origin="https://evil.example"))
    assert answer.status_code == 403 and "access-control-allow-origin" not in answer.headers
    assert "DUECOURSE_CODEC_CORS_ORIGINS" in answer.json()["detail"]


async def test_cors_preflight_answers_the_ui_origin_only_and_only_on_codec_routes(
        stack: Stack) -> None:
    asks = {"Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace"}
    for origin in (UI_ORIGIN, "http://127.0.0.1:8233"):
        for path in ("/codec/decode", f"/codec/ui/{stack.tokens['ops']}/encode"):
            answer = await stack.api.options(path, headers={"Origin": origin, **asks})
            assert answer.status_code == 204, answer.text
            assert answer.headers["access-control-allow-origin"] == origin
            assert answer.headers["access-control-allow-methods"] == "POST"
            allowed = {h.strip() for h in
                       answer.headers["access-control-allow-headers"].split(",")}
            assert {"content-type", "authorization", "x-namespace"} <= allowed
            assert answer.headers["access-control-allow-credentials"] == "true"
    refused = await stack.api.options("/codec/decode",
                                      headers={"Origin": "https://evil.example", **asks})
    assert refused.status_code == 403
    assert not [h for h in refused.headers if h.startswith("access-control-")]
    # the rest of the API keeps no CORS at all
    for method, path in (("OPTIONS", "/v1/loans"), ("GET", "/openapi.json")):
        other = await stack.api.request(method, path, headers={"Origin": UI_ORIGIN, **asks})
        assert not [h for h in other.headers if h.startswith("access-control-")], path


async def test_every_request_is_audited_allowed_or_refused_without_content(
        stack: Stack) -> None:
    namespace = f"ns-{uuid4().hex[:8]}"
    sealed = (await stack.api.post("/codec/encode", json=wire(plain({"name": "Li Wei"}, 2)),
                                   headers=bearer(stack.tokens["supervisor"],
                                                  **{"X-Namespace": namespace}))).json()
    guessed = f"dc_{stack.key_ids['ops']}_a-guess"  # key ids are not secret
    for token in (stack.tokens["ops"], stack.tokens["agent"], stack.tokens["revoked"],
                  "dc_0123456789abcdef_unknown", guessed, None):
        headers = {"X-Namespace": namespace, **(bearer(token) if token else {})}
        await stack.api.post("/codec/decode", json=sealed, headers=headers)
    rows = await rows_for(stack, namespace)
    assert len(rows) == 7, rows
    newest_key = stack.key_lines.splitlines()[-1].partition(":")[0]
    by = {(r.operation, r.key_id): r for r in rows}
    encoded = by["encode", stack.key_ids["supervisor"]]
    assert encoded.allowed and encoded.payload_key_ids == [newest_key]
    decoded = by["decode", stack.key_ids["ops"]]
    assert (decoded.allowed, decoded.status, decoded.role, decoded.payload_count,
            decoded.payload_key_ids) == (True, 200, "ops", 2, [newest_key])
    agent = by["decode", stack.key_ids["agent"]]
    assert (agent.allowed, agent.status, agent.role) == (False, 403, "agent")
    revoked = by["decode", stack.key_ids["revoked"]]
    assert (revoked.allowed, revoked.status) == (False, 401)
    assert revoked.key_name and "revoked" in (revoked.reason or "")
    unknown = [r for r in rows if r.key_id is None]
    assert [(r.allowed, r.status, r.key_name, r.role) for r in unknown] == \
        [(False, 401, None, None)] * 3  # an unknown key, a guessed secret, no key at all
    assert all(r.payload_count == 2 for r in rows)
    dump = json.dumps([r.model_dump(mode="json") for r in rows])
    assert "Li Wei" not in dump and "dc_" not in dump


async def test_duecourse_codec_server_serves_alone_and_keeps_keys_out_of_its_log(
        stack: Stack) -> None:
    env = {**os.environ, "DUECOURSE_DATABASE_URL": stack.settings.ledger_url,
           "DUECOURSE_PAYLOAD_KEYS": stack.key_lines, "DUECOURSE_DATA_DIR": str(stack.tmp),
           "NO_COLOR": "1", "COLUMNS": "250"}
    env.pop("DUECOURSE_PAYLOAD_KEY_FILE", None)
    log = stack.tmp / "codec-server.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "duecourse.cli", "codec-server", "--port",
            str(stack.codec_port), env=env, cwd=stack.tmp, stdout=out, stderr=out)
    namespace = f"ns-{uuid4().hex[:8]}"
    original = plain({"phone": "+8613800138000"})
    try:
        async with httpx.AsyncClient(base_url=stack.ui_endpoint.removesuffix(
                f"/codec/ui/{stack.tokens['ops']}"), timeout=10) as http:
            await eventually(lambda: _up(http), "duecourse codec-server to listen")
            sealed = (await http.post("/codec/encode", json=wire(original),
                                      headers=bearer(stack.tokens["ops"]))).json()
            opened = await http.post(f"{stack.ui_endpoint}/decode", json=sealed,
                                     headers={"X-Namespace": namespace, "Origin": UI_ORIGIN})
            assert opened.status_code == 200, opened.text
            assert unwire(opened.json()) == original
            refused = await http.post("/codec/decode", json=sealed,
                                      headers={"X-Namespace": namespace})
            assert refused.status_code == 401
            (shown,), loan = await _temporal_cli_shows(stack)
            assert shown.metadata["encoding"] == b"json/plain"
            assert json.loads(shown.data) == loan
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    output = log.read_text()
    assert "/codec/ui/<redacted>/decode" in output  # uvicorn's access log, redacted
    assert stack.tokens["ops"] not in output
    audit = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", "codec-audit", "--json", env=env,
        cwd=stack.tmp, stdout=asyncio.subprocess.PIPE)
    printed, _ = await asyncio.wait_for(audit.communicate(), 60)
    assert audit.returncode == 0
    mine = [r for r in json.loads(printed) if r["namespace"] == namespace]
    assert [(r["allowed"], r["status"]) for r in mine] == [(False, 401), (True, 200)]


async def _temporal_cli_shows(stack: Stack) -> tuple[list[Payload], Any]:
    """A sealed workflow input as `temporal workflow show` prints it decoded through the
    codec server by the CLI's own codec client (the protocol the UI speaks too), and the
    loan that was sealed."""
    loan = make_loan(datetime.now(UTC))
    handle = await stack.old_ring_client.start_workflow(
        "NoWorkerRunsThis", loan, id=f"codec-{uuid4().hex}", task_queue=f"q-{uuid4().hex}")
    show = [str(TEMPORAL_CLI), "workflow", "show", "-w", handle.id, "--output", "json",
            "--address", stack.server.address]
    codec = ["--codec-endpoint", f"http://127.0.0.1:{stack.codec_port}/codec",
             "--codec-auth", f"Bearer {stack.tokens['ops']}"]
    inputs = []
    try:
        for extra in ([], codec):
            proc = await asyncio.create_subprocess_exec(
                *show, *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            started = json.loads(out)["events"][0]["workflowExecutionStartedEventAttributes"]
            inputs.append(unwire(started["input"]))
    finally:
        await handle.terminate()
    assert inputs[0][0].metadata["encoding"] == b"binary/encrypted"  # sealed in the history
    return inputs[1], loan.model_dump(mode="json")


async def _up(http: httpx.AsyncClient) -> bool:
    try:
        await http.post("/codec/decode")
    except httpx.TransportError:
        return False
    return True


async def test_codec_server_refuses_to_start_on_settings_it_cannot_use(stack: Stack) -> None:
    env = {**os.environ, "DUECOURSE_DATABASE_URL": stack.settings.ledger_url,
           "DUECOURSE_PAYLOAD_KEYS": stack.key_lines, "DUECOURSE_CODEC_ROLES": "ops,boss"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", "codec-server", "--port", str(free_port()),
        env=env, cwd=stack.tmp, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and "DUECOURSE_CODEC_ROLES" in err.decode()
    with pytest.raises(CodecSettingsError, match="DUECOURSE_CODEC_CORS_ORIGINS"):
        codec_policy(Settings(codec_cors_origins="localhost:8233"))


def test_a_key_in_a_codec_path_is_redacted() -> None:
    assert redact_path('"POST /codec/ui/dc_ab_cd/decode HTTP/1.1"') == \
        '"POST /codec/ui/<redacted>/decode HTTP/1.1"'
    assert redact_path("/codec/decode") == "/codec/decode"
    assert redact_path('"GET /b/eyJrIjoi.c2ln?done=done_pay HTTP/1.1"') == \
        '"GET /b/<redacted>?done=done_pay HTTP/1.1"'
    assert redact_path("/v1/unsubscribe/eyJj.c2ln") == "/v1/unsubscribe/<redacted>"
    assert redact_path("/v1/loans/L-1/balance") == "/v1/loans/L-1/balance"


async def test_the_dev_server_points_its_ui_at_the_codec_server(stack: Stack) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"http://127.0.0.1:{stack.server.ui_port}/api/v1/settings")
    assert answer.status_code == 200
    assert answer.json()["Codec"]["Endpoint"] == stack.ui_endpoint

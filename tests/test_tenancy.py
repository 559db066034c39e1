"""Tenancy above keys: a platform owns its loans and webhooks whichever of its keys acts;
keys rotate and revoke without losing them; a disabled platform is refused; every loan's
workflow starts with its platform's fairness key; migration 0011 keeps 0.4 owners owned.

The API runs against a real worker on the real Temporal dev server, webhook deliveries go
to a real HTTP receiver, and the migration runs on SQLite and PostgreSQL (when reachable).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from duecourse import search_attributes as sa
from duecourse.api import create_app
from duecourse.api.auth import Principal
from duecourse.api.services import Services
from duecourse.cli.app import app as cli_app
from duecourse.domain.actor import Role
from duecourse.policies import load_policy
from duecourse.runtime import build_worker
from duecourse.store import Ledger, connect, migrate
from duecourse.store import tables as t
from duecourse.store.database import downgrade
from duecourse.store.keys import KeyStore
from duecourse.store.owners import LoanOwners
from duecourse.store.platforms import PlatformStore
from duecourse.store.webhooks import WebhookStore
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.fairness import LENDER
from tests.conftest import settings_for_tests
from tests.factories import daytime_zone, make_loan
from tests.support.databases import blank_database
from tests.support.sealing import sealed
from tests.support.waiting import eventually
from tests.test_webhooks import Receiver, serving

TEMPORAL = Path(sys.executable).parent / "temporal"


@dataclass
class Stack:
    http: httpx.AsyncClient
    ledger: Ledger
    client: CollectionClient
    keys: KeyStore
    platforms: PlatformStore

    async def call(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, **kwargs,
                                       headers={"Authorization": f"Bearer {token}"})

    async def platform(self, label: str) -> tuple[str, str, str]:
        """A new platform and its first key: (platform id, key id, token)."""
        pid = f"{label}-{uuid4().hex[:8]}"
        await self.platforms.create(pid, f"{label.title()} Lending Platform")
        key, token = await self.keys.create(f"{pid}-k1", Role.PLATFORM, pid)
        return pid, key.key_id, token


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL), search_attributes=sa.ALL,
        data_converter=sealed())
    engine = connect(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ten') / 'ledger.db'}")
    await migrate(engine)
    ledger, keys = Ledger(engine), KeyStore(engine)
    queue = f"tenancy-{uuid4().hex}"
    settings = settings_for_tests()
    client = CollectionClient(env.client, queue)
    app = create_app(settings, Services(client=client, ledger=ledger, keys=keys,
                                        settings=settings))
    async with build_worker(env.client, ledger, settings, queue), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield Stack(http, ledger, client, keys, PlatformStore(engine))
    await engine.dispose()
    await env.shutdown()


def loan_body() -> dict[str, Any]:
    # A real-time server: the borrower must be in contact hours now, whenever CI runs.
    now = datetime.now(UTC)
    return make_loan(now, dpd=3, tz=daytime_zone(now)).model_dump(mode="json")


def refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["detail"], response.json()


async def fairness_key_of(stack: Stack, loan_id: str) -> str:
    """The fairness key the server recorded when the loan's workflow started."""
    async for event in stack.client.handle(loan_id).fetch_history_events():
        return event.workflow_execution_started_event_attributes.priority.fairness_key
    raise AssertionError(f"no history for {loan_id}")


@pytest.mark.devserver
async def test_a_rotated_key_keeps_the_platforms_loans_and_webhooks(stack: Stack) -> None:
    pid, old_id, k1 = await stack.platform("acme")
    _, _, other = await stack.platform("rival")
    body = loan_body()
    loan = body["loan_id"]
    async with serving(Receiver()) as receiver, serving(Receiver()) as rival_receiver:
        hook = await stack.call("POST", "/v1/webhooks", k1, json={
            "url": receiver.url, "events": ["loan.paid"], "secret": "s" * 32})
        assert hook.status_code == 201, hook.text
        receiver.secret, webhook_id = "s" * 32, hook.json()["webhook_id"]
        assert hook.json()["owner"] == pid
        rival = await stack.call("POST", "/v1/webhooks", other, json={
            "url": rival_receiver.url, "events": ["*"], "secret": "r" * 32})
        rival_receiver.secret = "r" * 32
        assert rival.status_code == 201
        assert (await stack.call("POST", "/v1/loans", k1, json=body)).status_code == 201

        new, k2 = await stack.keys.rotate(old_id)
        assert new.platform_id == pid and new.key_id != old_id
        assert await stack.keys.revoke(old_id)

        refused(await stack.call("GET", f"/v1/loans/{loan}", k1), 401, "unknown or revoked")
        assert (await stack.call("GET", f"/v1/loans/{loan}", k2)).status_code == 200
        hooks = (await stack.call("GET", "/v1/webhooks", k2)).json()["webhooks"]
        assert [h["webhook_id"] for h in hooks] == [webhook_id]

        async def k2_finds_it() -> bool:
            page = (await stack.call("GET", "/v1/loans?page_size=100", k2)).json()
            return any(item["loan_id"] == loan for item in page["loans"])

        await eventually(k2_finds_it, "the new key's search to list the platform's loan")
        # another platform's key sees neither the loan nor the webhook
        refused(await stack.call("GET", f"/v1/loans/{loan}", other), 404, loan)
        assert webhook_id not in {h["webhook_id"] for h in (await stack.call(
            "GET", "/v1/webhooks", other)).json()["webhooks"]}
        refused(await stack.call("DELETE", f"/v1/webhooks/{webhook_id}", other), 404,
                webhook_id)

        # the new key acts on the loan: paid in full, the event reaches the platform's
        # webhook (registered by the revoked key) and not the rival's
        paid = await stack.call("POST", f"/v1/loans/{loan}/payments", k2,
                                json={"reference": "PAY-ROT", "amount": body["outstanding"]})
        assert paid.status_code == 202, paid.text

        async def delivered() -> bool:
            return any(e.loan_id == loan and e.type == "loan.paid" for e in receiver.accepted)

        await eventually(delivered, "loan.paid at the platform's webhook", seconds=60)
        assert receiver.bad_signatures == []
        assert all(e.loan_id != loan for e in rival_receiver.accepted)
    payments = await stack.ledger.rows(t.payments, loan_id=loan)
    assert [(p["actor_kind"], p["actor_id"]) for p in payments] == [("platform", pid)], \
        "the ledger names the platform, not the key"
    assert (await stack.call("DELETE", f"/v1/webhooks/{webhook_id}", k2)).status_code == 204


@pytest.mark.devserver
async def test_a_disabled_platforms_keys_are_refused(stack: Stack) -> None:
    pid, _, token = await stack.platform("paused")
    _, _, other = await stack.platform("running")
    assert (await stack.call("GET", "/v1/webhooks", token)).status_code == 200
    assert await stack.platforms.disable(pid)
    for method, path in [("GET", "/v1/webhooks"), ("GET", "/v1/loans"),
                         ("POST", "/v1/loans")]:
        refused(await stack.call(method, path, token, json=loan_body()), 403,
                f"platform {pid} is disabled")
    assert (await stack.call("GET", "/v1/webhooks", other)).status_code == 200
    assert await stack.platforms.enable(pid)
    assert (await stack.call("GET", "/v1/webhooks", token)).status_code == 200


@pytest.mark.devserver
async def test_each_platforms_loans_start_with_its_fairness_key(stack: Stack) -> None:
    pid, key_id, k1 = await stack.platform("fair")
    one, two, many = loan_body(), loan_body(), loan_body()
    assert (await stack.call("POST", "/v1/loans", k1, json=one)).status_code == 201
    _, k2 = await stack.keys.rotate(key_id)
    assert (await stack.call("POST", "/v1/loans", k2, json=two)).status_code == 201
    batch = await stack.call("POST", "/v1/loans:batch", k2, json={"loans": [many]})
    assert batch.json()["started"] == 1, batch.text
    for body in (one, two, many):
        assert await fairness_key_of(stack, body["loan_id"]) == pid
    own = make_loan(datetime.now(UTC), dpd=3, tz=daytime_zone(datetime.now(UTC)))
    assert (await stack.client.start(own, load_policy("standard"))).started
    assert await fairness_key_of(stack, own.loan_id) == LENDER


# ------------------------------------------------------------------- migration 0011
@pytest.fixture(params=["sqlite", "postgresql"])
async def blank(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database (PostgreSQL: a throwaway schema), not migrated yet."""
    async with blank_database(request.param, tmp_path, "tenancy") as eng:
        yield eng


async def test_migration_0011_keeps_a_0_4_ledgers_loans_and_webhooks_owned(
        blank: AsyncEngine) -> None:
    await migrate(blank, "0010")
    created = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    secret = "a-0.4-secret-of-32-bytes-or-so-xyz"

    def key(key_id: str, name: str, role: str, revoked: datetime | None = None,
            ) -> dict[str, Any]:
        return {"key_id": key_id, "name": name, "role": role, "created_at": created,
                "secret_hash": hashlib.sha256(secret.encode()).hexdigest(),
                "revoked_at": revoked}

    async with blank.begin() as conn:  # as 0.4 wrote them: owners are key names
        await conn.execute(t.api_keys.insert(), [
            key("k0000000000000a1", "core-banking", "platform"),
            key("k0000000000000a2", "retired-app", "platform", revoked=created),
            key("k0000000000000a3", "agent-7", "agent")])
        await conn.execute(t.loan_owners.insert(), [
            {"loan_id": "L-1", "platform": "core-banking", "claimed_at": created},
            {"loan_id": "L-2", "platform": "retired-app", "claimed_at": created}])
        await conn.execute(t.webhooks.insert().values(
            webhook_id="wh_core", owner="core-banking", url="https://hooks.example.com/x",
            secret="w" * 32, events=["*"], created_at=created, disabled_at=None))
    await migrate(blank)

    platforms = {p.platform_id: p for p in await PlatformStore(blank).list()}
    assert set(platforms) == {"core-banking", "retired-app"}
    assert platforms["core-banking"].created_at == created
    keys = KeyStore(blank)
    core = await keys.verify(f"dc_k0000000000000a1_{secret}")
    agent = await keys.verify(f"dc_k0000000000000a3_{secret}")
    assert core is not None and core.platform_id == "core-banking"
    assert agent is not None and agent.platform_id is None
    assert await LoanOwners(blank).owner_of("L-1") == Principal(core).platform

    # the platform rotates its key: the new one still owns the 0.4 loan and webhook
    new, token = await keys.rotate("k0000000000000a1")
    assert await keys.revoke("k0000000000000a1")
    assert await keys.verify(f"dc_k0000000000000a1_{secret}") is None
    rotated = await keys.verify(token)
    assert rotated is not None and rotated.key_id == new.key_id
    me = Principal(rotated)
    assert me.platform == "core-banking" and str(me.actor) == "platform:core-banking"
    assert await LoanOwners(blank).owner_of("L-1") == me.platform
    assert [w.webhook_id for w in await WebhookStore(blank).list(me.platform)] == ["wh_core"]

    await downgrade(blank, "0010")
    async with blank.connect() as conn:
        names, columns = await conn.run_sync(lambda sync: (
            inspect(sync).get_table_names(),
            {c["name"] for c in inspect(sync).get_columns("api_keys")}))
    assert "platforms" not in names and "platform_id" not in columns
    assert len(await Ledger(blank).rows(t.loan_owners)) == 2, "downgrade keeps the owners"


# ------------------------------------------------------------------- the CLI
async def test_the_cli_rotates_a_platforms_key_and_disables_the_platform(
        tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    engine = connect(url)
    await migrate(engine)
    env = {"DUECOURSE_DATABASE_URL": url, "DUECOURSE_DATA_DIR": str(tmp_path / "data"),
           "COLUMNS": "250", "NO_COLOR": "1"}

    async def cli(*args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(CliRunner().invoke, cli_app, list(args), env=env)
        return result.exit_code, result.output

    def token_and_id(output: str) -> tuple[str, str]:
        found = re.search(r"id ([0-9a-f]{16})\): (dc_\S+)", output)
        assert found, output
        return found.group(2), found.group(1)

    try:
        assert (await cli("platforms", "create", "acme", "--name", "Acme Pay"))[0] == 0
        code, out = await cli("keys", "create", "--name", "acme-app", "--role", "platform",
                              "--platform", "acme")
        assert code == 0, out
        old_token, old_id = token_and_id(out)
        for args, words in [
                (("--name", "x", "--role", "platform", "--platform", "nope"),
                 "no platform 'nope'; create it first with `duecourse platforms create"),
                (("--name", "desk-9", "--role", "agent", "--platform", "acme"),
                 "only a platform key belongs to a platform"),
                (("--name", "acme", "--role", "platform"),  # a name's luck joins nothing
                 "a platform 'acme' already exists: to give it another key pass --platform")]:
            code, out = await cli("keys", "create", *args)
            assert code == 1 and words in " ".join(out.split()), out
        code, out = await cli("keys", "rotate", old_id)
        assert code == 0 and f"stays live until `duecourse keys revoke {old_id}`" in out, out
        new_token, _ = token_and_id(out)
        assert (await cli("keys", "revoke", old_id))[0] == 0
        code, out = await cli("keys", "revoke", old_id)
        assert code == 1 and "no live key" in out, out

        keys = KeyStore(engine)
        assert await keys.verify(old_token) is None
        new = await keys.verify(new_token)
        assert new is not None and new.platform_id == "acme"
        code, out = await cli("keys", "list", "--platform", "acme")
        assert code == 0 and out.count(" acme ") == 2, out  # the old key and the new one
        assert (await cli("platforms", "disable", "acme"))[0] == 0
        new = await keys.verify(new_token)
        assert new is not None and new.platform_disabled_at is not None
        code, out = await cli("platforms", "list")
        assert code == 0 and re.search(r"acme\s+.\s+Acme Pay\s+.\s+1\s", out), out
    finally:
        await engine.dispose()

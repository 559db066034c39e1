"""Click to dial (issue 13 item 5, the agent half): `POST /v1/loans/{id}/calls` asks the
engine and hands an allowed call to a real dialer on loopback (tests/dialers.py) with the
decision and the agent attached; the dialer's signed result reaches that loan. A call not
allowed dials nothing; without a dialer the agent is told to dial by hand.

Borrowers are in Asia/Shanghai with the time-skipping server's clock moved to a chosen
local time, so the verdicts do not depend on when the tests run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from temporalio.testing import WorkflowEnvironment

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.domain.compliance import requests
from duecourse.domain.loan import LoanIntake
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.conftest import Harness, advance_to_local
from tests.dialers import DIALER_TOKEN, Dialer, post_result
from tests.factories import AGENT, make_loan
from tests.sms_gateways import serving
from tests.support.cli import run_cli
from tests.test_workflow_faults import Rig, rig
from tests.test_workflow_negotiation import STANDARD

PUBLIC = "https://collections.lender.example"
SECRET = "inbound-secret-for-tests-0123456789"
SHANGHAI = ZoneInfo("Asia/Shanghai")
TO = "+8613800138000"


@dataclass
class Desk:
    """A worker, a dialer, and our API with an agent's key."""

    r: Rig
    dialer: Dialer
    api: httpx.AsyncClient
    auth: dict[str, str]

    async def loan_at(self, local: time) -> LoanIntake:
        """A CN loan handed over with the borrower's clock at `local`, in the ledger."""
        await advance_to_local(Harness(self.r.env, self.r.client, self.r.ledger, ""),
                               SHANGHAI, local)
        loan = make_loan(await self.r.env.get_current_time(), dpd=7, phones=[TO])
        await self.r.client.start(loan, STANDARD)
        await self.r.settle(loan.loan_id)
        return loan

    async def call(self, loan: LoanIntake, **body: Any) -> httpx.Response:
        return await self.api.post(f"/v1/loans/{loan.loan_id}/calls", json=body,
                                   headers=self.auth)


@asynccontextmanager
async def desk(env: WorkflowEnvironment, ledger: Ledger,
               dialer_configured: bool = True) -> AsyncIterator[Desk]:
    async with serving(Dialer()) as dialer:
        voice = {"voice_url": f"{dialer.url}/v1", "voice_token": DIALER_TOKEN} \
            if dialer_configured else {}
        settings = Settings(public_url=PUBLIC, inbound_secret=SECRET, **voice)
        async with rig(env, ledger) as r:  # automated messages go to the outbox
            services = Services(client=r.client, ledger=ledger, keys=KeyStore(ledger.engine),
                                settings=settings)
            token = (await services.keys.create("agent-9", "agent"))[1]
            async with httpx.AsyncClient(transport=httpx.ASGITransport(
                    app=create_app(settings, services)), base_url="http://api") as api:
                yield Desk(r, dialer, api, {"Authorization": f"Bearer {token}"})


async def test_an_allowed_call_reaches_the_dialer_and_its_result_reaches_the_loan(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    async with desk(ts_env, ledger) as x:
        loan = await x.loan_at(time(10, 0))
        placed = await x.call(loan, note="Follow up on the overdue instalment.")
        assert placed.status_code == 201, placed.text
        answer = placed.json()
        assert answer["status"] == "dialling" and answer["decision"]["verdict"] == "allowed"
        [sent] = x.dialer.calls.values()
        assert sent.id == answer["call_id"] and sent.to == TO
        assert sent.script == "Follow up on the overdue instalment."
        assert sent.decision["verdict"] == "allowed" and sent.decision["agent"] == "agent-9"
        assert sent.decision["valid_until"] and TO not in str(sent.decision)
        [row] = await x.r.rows(t.agent_calls, loan_id=loan.loan_id)
        assert (row["call_id"], row["recipient"], row["actor_id"]) == (sent.id, TO, "agent-9")
        assert row["idempotency_key"] == sent.key and row["case_id"] in sent.key
        asked = [d for d in await x.r.rows(t.compliance_decisions, loan_id=loan.loan_id)
                 if d["step"] == "agent-contact"]
        assert [(d["verdict"], d["actor_id"]) for d in asked] == [("allowed", "agent-9")]
        recording = "rec_agent_call_0001"
        result = await post_result(x.api, SECRET, {
            "call_id": sent.id, "result": "right_party_verified", "recording": recording})
        assert result.json() == {"result": "recorded"}, result.text
        await x.r.settle(loan.loan_id)
        [outcome] = [e for e in await x.r.rows(t.audit_events, loan_id=loan.loan_id)
                     if e["kind"] == "contact_outcome"]
        assert outcome["actor_id"] == "agent-9", "the call's agent, though the post named none"
        details = outcome["data"]["details"]
        assert (details["result"], details["recording"]) == ("right_party_verified", recording)
        [kept] = await x.r.rows(t.delivery_receipts, provider_message_id=sent.id)
        assert recording in kept["error"] and kept["loan_id"] == loan.loan_id
        assert (await x.r.client.status(loan.loan_id)).stage == "NEGOTIATION"


async def test_a_call_not_allowed_dials_nothing(ts_env: WorkflowEnvironment,
                                                ledger: Ledger) -> None:
    async with desk(ts_env, ledger) as x:
        loan = await x.loan_at(time(23, 0))  # CN: calls 08:00-22:00 local
        late = await x.call(loan)
        assert late.status_code == 409, late.text
        assert late.headers["content-type"] == "application/problem+json"
        assert "not now: earliest" in late.json()["detail"]
        assert "nothing was dialled" in late.json()["detail"]
        await x.r.client.update_contact_preferences(loan.loan_id, requests.PreferenceChange(
            cease_communication=True, actor=AGENT))
        ceased = await x.call(loan)
        assert ceased.status_code == 422, ceased.text
        assert "blocked" in ceased.json()["detail"]
        assert x.dialer.requests == [] and await x.r.rows(t.agent_calls) == []


async def test_without_a_dialer_the_agent_dials_by_hand(ts_env: WorkflowEnvironment,
                                                        ledger: Ledger) -> None:
    async with desk(ts_env, ledger, dialer_configured=False) as x:
        loan = await x.loan_at(time(10, 0))
        answer = await x.call(loan)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "dial_by_hand" and body["call_id"] is None
        assert body["decision"]["verdict"] == "allowed" and "dial by hand" in body["detail"]
        assert x.dialer.requests == [] and await x.r.rows(t.agent_calls) == []
        missing = await x.api.post("/v1/loans/no-such-loan/calls", json={},
                                   headers=x.auth)
        assert missing.status_code == 404, missing.text


async def test_the_cli_dials_through_the_same_path(ts_env: WorkflowEnvironment,
                                                   ledger: Ledger) -> None:
    """`duecourse may-contact --dial`, as an agent runs it: asked, allowed, dialled."""
    async with desk(ts_env, ledger) as x:
        loan = await x.loan_at(time(10, 0))
        h = Harness(x.r.env, x.r.client, x.r.ledger, x.r.client.task_queue)
        voice = {"DUECOURSE_VOICE_URL": f"{x.dialer.url}/v1",
                 "DUECOURSE_VOICE_TOKEN": DIALER_TOKEN, "DUECOURSE_PUBLIC_URL": PUBLIC,
                 "DUECOURSE_INBOUND_SECRET": SECRET}
        code, out, _ = await run_cli(h, "may-contact", loan.loan_id, "--agent", "agent-9",
                                     "--channel", "sms", "--dial", merge_stderr=True,
                                     settings=voice)
        assert code == 1 and "--dial places a voice call" in out, out
        assert x.dialer.requests == []
        code, out, _ = await run_cli(h, "may-contact", loan.loan_id, "--agent", "agent-9",
                                     "--channel", "voice", "--dial", merge_stderr=True,
                                     settings=voice)
        assert code == 0, out
        [sent] = x.dialer.calls.values()
        assert f"the dialer is calling (call {sent.id})" in " ".join(out.split())
        assert sent.decision["agent"] == "agent-9" and sent.to == TO
        [row] = await x.r.rows(t.agent_calls, loan_id=loan.loan_id)
        assert row["call_id"] == sent.id

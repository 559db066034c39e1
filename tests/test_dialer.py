"""Voice through a dialer (issue 13 item 5), against a real dialer on loopback
(tests/dialers.py): the call request carries the script and the may-contact decision, the
key is honoured, refusals are final or retried as they should be; and a loan's automated
call goes to the dialer, whose signed result callback completes the call in the loan's
history so the CN and US call limits count it, keeping its recording reference."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.channels import ChannelError, OutboxChannel, OutgoingMessage, Sighting
from duecourse.channels.dialer import dialer_channel
from duecourse.channels.router import ChannelRouter
from duecourse.channels.routing import ChannelSettingError, channels_from_settings
from duecourse.domain.case.commands import ContactOutcomeReport, ContactResult
from duecourse.domain.compliance.model import Verdict
from duecourse.domain.compliance.requests import ContactRequest
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel
from duecourse.inbound.call_results import DialerResult
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.conftest import Harness, advance_to_local
from tests.dialers import DIALER_TOKEN, Dialer, post_result
from tests.factories import AGENT, make_loan
from tests.sms_gateways import serving
from tests.test_workflow_faults import Rig, rig
from tests.test_workflow_negotiation import STANDARD

PUBLIC = "https://collections.lender.example"
SECRET = "inbound-secret-for-tests-0123456789"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
US_PHONE = "+12125550123"
TO = "+8613800138000"
DECISION = {"verdict": "allowed", "code": "", "valid_until": "2026-12-02T13:00:00+00:00"}


def voice_settings(url: str, **extra: Any) -> Settings:
    return Settings(**{"voice_url": f"{url}/v1", "voice_token": DIALER_TOKEN,
                       "public_url": PUBLIC, "inbound_secret": SECRET, **extra})


def call(key: str = "case-1:courtesy-call", to: str = TO,
         decision: dict[str, str] | None = DECISION) -> OutgoingMessage:
    return OutgoingMessage(idempotency_key=key, channel="voice", recipient=to, subject=None,
                           body="Hello, this is a courtesy call.", language="en",
                           loan_id="L-1", case_id="case-1", decision=decision)


# ------------------------------------------------------------------------------ adapter
async def test_a_call_goes_with_its_script_decision_callback_and_key(ledger: Ledger) -> None:
    async with serving(Dialer()) as dialer:
        adapter = dialer_channel(voice_settings(dialer.url), ledger)
        call_id = await adapter.send(call())
        assert await adapter.send(call()) == call_id, "the same key is the same call"
        [placed] = dialer.calls.values()
        assert placed.id == call_id and placed.to == TO
        assert placed.script == "Hello, this is a courtesy call."
        assert placed.decision == DECISION
        assert placed.result_callback == f"{PUBLIC}/v1/inbound/dialer/result"
        post = dialer.requests[0]
        assert post.headers["authorization"] == f"Bearer {DIALER_TOKEN}"
        assert post.headers["idempotency-key"] == "case-1:courtesy-call"
        assert adapter.name == "dialer:127.0.0.1"
        found = await adapter.find("case-1:courtesy-call")
        assert found.known and found.message_id == call_id and found.accepted_at is not None
        assert await adapter.find("case-1:never") == Sighting(known=True)
        assert dialer.requests[-1].path == "/v1/calls/case-1%3Anever"


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (422, True), (401, True),
                                                   (429, False), (503, False)])
async def test_4xx_is_final_and_429_or_5xx_is_retried(ledger: Ledger, status: int,
                                                      permanent: bool) -> None:
    async with serving(Dialer()) as dialer:
        dialer.fail_next.append(status)
        with pytest.raises(ChannelError) as failed:
            await dialer_channel(voice_settings(dialer.url), ledger).send(call())
        assert failed.value.permanent is permanent and str(status) in str(failed.value)
        assert "forced" in str(failed.value) and TO not in str(failed.value)


async def test_no_call_without_a_valid_number_or_an_allowing_decision(
        ledger: Ledger) -> None:
    async with serving(Dialer()) as dialer:
        adapter = dialer_channel(voice_settings(dialer.url), ledger)
        for bad in (call(to="+86 123"), call(decision=None),
                    call(decision={**DECISION, "verdict": "deferred"})):
            with pytest.raises(ChannelError) as refused:
                await adapter.send(bad)
            assert refused.value.permanent and "+86" not in str(refused.value)
        assert dialer.requests == [], "refused before dialling"


async def test_a_dialer_that_does_not_answer_is_retried(ledger: Ledger) -> None:
    adapter = dialer_channel(voice_settings("http://127.0.0.1:9"), ledger)
    with pytest.raises(ChannelError) as failed:
        await adapter.send(call())
    assert not failed.value.permanent and "did not answer" in str(failed.value)


@pytest.mark.parametrize(("settings", "name"), [
    ({"voice_url": "ftp://dialer.example/v1"}, "DUECOURSE_VOICE_URL"),
    ({"voice_url": "http://dialer.example/v1"}, "DUECOURSE_VOICE_URL"),
    ({"voice_url": "https://u:p@dialer.example/v1"}, "DUECOURSE_VOICE_URL"),
    ({"voice_token": None}, "DUECOURSE_VOICE_TOKEN"),
    ({"public_url": "collections.lender.example"}, "DUECOURSE_PUBLIC_URL"),
])
async def test_a_bad_setting_is_one_sentence_naming_it(ledger: Ledger,
                                                       settings: dict[str, Any],
                                                       name: str) -> None:
    base = {"voice_url": "https://dialer.example/v1", "voice_token": "s3cret-dialer",
            "public_url": PUBLIC}
    with pytest.raises(ChannelSettingError) as refused:
        channels_from_settings(Settings(**{**base, **settings}), ledger)
    assert name in str(refused.value) and "s3cret-dialer" not in str(refused.value)
    routes = channels_from_settings(Settings(**base), ledger).routes()
    assert routes["voice"] == "dialer:dialer.example" and routes["sms"] == "outbox"


# --------------------------------------------------------------------------- end to end
@dataclass
class Line:
    """A worker whose voice goes to the dialer, and our API the dialer calls back."""

    r: Rig
    dialer: Dialer
    api: httpx.AsyncClient

    async def called(self, loan: LoanIntake) -> dict[str, Any]:
        """The loan's automated call, once placed: its contact_attempts row."""
        await self.r.client.start(loan, STANDARD)
        await self.r.env.sleep(timedelta(hours=1, minutes=10))
        [row] = [c for c in await self.r.rows(t.contact_attempts, loan_id=loan.loan_id)
                 if c["step"] == "courtesy-call"]
        return row

    async def result(self, call_id: str, result: str, **extra: Any) -> httpx.Response:
        return await post_result(self.api, SECRET, {"call_id": call_id, "result": result,
                                                    **extra})

    async def ask(self, loan: LoanIntake) -> Any:
        return await self.r.client.request_contact(loan.loan_id, ContactRequest(
            channel=Channel.VOICE, actor=AGENT))


@asynccontextmanager
async def line(env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Line]:
    async with serving(Dialer()) as dialer:
        settings = voice_settings(dialer.url)
        router = ChannelRouter(OutboxChannel(ledger), {"voice": dialer_channel(settings,
                                                                               ledger)})
        async with rig(env, ledger, channel=router) as r:
            services = Services(client=r.client, ledger=ledger, keys=KeyStore(ledger.engine),
                                settings=settings)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(
                    app=create_app(settings, services)), base_url="http://api") as api:
                yield Line(r, dialer, api)


async def cn_loan(x: Line) -> LoanIntake:
    """A CN loan whose courtesy call (due date + 7 days, 11:00) is an hour away."""
    await advance_to_local(Harness(x.r.env, x.r.client, x.r.ledger, ""), SHANGHAI,
                           time(10, 0))
    return make_loan(await x.r.env.get_current_time(), dpd=7, phones=[TO])


async def test_an_automated_call_reaches_the_dialer_and_its_results_feed_the_cn_cap(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    async with line(ts_env, ledger) as x:
        loan = await cn_loan(x)
        row = await x.called(loan)
        [placed] = x.dialer.calls.values()
        assert row["status"] == "sent" and row["sent_via"] == "dialer:127.0.0.1"
        assert row["provider_message_id"] == placed.id and placed.to == TO
        assert placed.script == row["body"] and placed.key == row["idempotency_key"]
        assert placed.decision["verdict"] == "allowed" and placed.decision["valid_until"]
        assert TO not in json.dumps(placed.decision), "the decision names no number"
        unsigned = await post_result(x.api, None, {"call_id": placed.id, "result": "busy"})
        stale = await post_result(x.api, SECRET, {"call_id": placed.id, "result": "busy"},
                                  at=1)
        assert unsigned.status_code == stale.status_code == 401
        assert await x.r.rows(t.delivery_receipts) == [], "a refused post records nothing"
        bad = await x.result(placed.id, "hung_up")
        assert bad.status_code == 422 and "result" in bad.json()["detail"]
        bad = await x.result(placed.id, "busy", recording="http://rec.example/1.wav")
        assert bad.status_code == 422 and "https" in bad.json()["detail"]
        recording = "https://rec.example/calls/1.wav"
        first = await x.result(placed.id, "busy", recording=recording)
        assert first.json() == {"result": "recorded"}, first.text
        again = await x.result(placed.id, "no_answer")
        assert again.json() == {"result": "duplicate"}, "a call has one result"
        unknown = await x.result("call-nobody-placed", "answered")
        assert unknown.status_code == 409 and "post the result again" in unknown.json()[
            "detail"], unknown.text
        [kept] = await x.r.rows(t.delivery_receipts, attempt_id=row["id"])
        assert kept["status"] == "call_result" and recording in kept["error"]
        outcomes = [(e["actor_id"], e["data"]["details"]["result"]) for e in
                    await x.r.rows(t.audit_events, loan_id=loan.loan_id)
                    if e["kind"] == "contact_outcome"]
        assert outcomes == [("dialer", "busy")], "the call's result reached the loan once"
        # the busy call is one of CN's six unanswered attempts a day to the number
        for result in (ContactResult.VOICEMAIL, ContactResult.BUSY, ContactResult.NO_ANSWER,
                       ContactResult.VOICEMAIL, ContactResult.BUSY):
            assert (await x.ask(loan)).allowed
            await x.r.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
                channel=Channel.VOICE, result=result, actor=AGENT))
        capped = await x.ask(loan)
        assert capped.verdict is Verdict.DEFERRED and capped.code == "unanswered_attempts"
        status = await x.r.client.status(loan.loan_id)
        assert status.stage == "REMINDER", "nobody talked: nothing to negotiate"


async def test_a_result_that_overtakes_the_dialers_answer_is_applied_once(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """The dialer posts the result while our POST waits for its id: with our key echoed
    it matches at once; without, it is refused 409 recording nothing, and its retry once
    the id is known is applied."""
    async with line(ts_env, ledger) as x:
        early: list[httpx.Response] = []

        async def ends_at_once(placed: Any) -> None:
            early.append(await x.result(placed.id, "busy"))
            early.append(await x.result(placed.id, "busy", idempotency_key=placed.key))

        x.dialer.before_answer = ends_at_once
        loan = await cn_loan(x)
        row = await x.called(loan)
        assert [r.status_code for r in early] == [409, 200], [r.text for r in early]
        assert early[1].json() == {"result": "recorded"}
        [placed] = x.dialer.calls.values()
        assert row["provider_message_id"] == placed.id
        again = await x.result(placed.id, "busy")
        assert again.json() == {"result": "duplicate"}, "applied once"
        [kept] = await x.r.rows(t.delivery_receipts)
        assert kept["attempt_id"] == row["id"] and kept["loan_id"] == loan.loan_id
        await x.r.settle(loan.loan_id)
        outcomes = [e["data"]["details"]["result"] for e in
                    await x.r.rows(t.audit_events, loan_id=loan.loan_id)
                    if e["kind"] == "contact_outcome"]
        assert outcomes == ["busy"]


async def test_an_invalid_number_is_marked_and_never_dialled_again(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    async with line(ts_env, ledger) as x:
        loan = await cn_loan(x)
        placed = (await x.called(loan))["provider_message_id"]
        assert (await x.result(placed, "invalid_number")).json() == {"result": "recorded"}
        [marked] = await x.r.rows(t.unreachable_addresses)
        assert (marked["channel"], marked["address"]) == ("voice", TO)
        outcomes = [e["data"]["details"] for e in await x.r.rows(
            t.audit_events, loan_id=loan.loan_id) if e["kind"] == "contact_outcome"]
        assert [(o["result"], o["address"]) for o in outcomes] == [("wrong_number", TO)]


async def test_a_conversation_moves_to_negotiation_counts_as_answered_and_keeps_the_recording(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """Needs the lead's edits: attempt_result maps answered results (outcomes.py), the
    contact_outcome event keeps `recording` (aggregate.py), the API passes it on
    (schemas.py OutcomeIn, routes/actions.py)."""
    async with line(ts_env, ledger) as x:
        loan = await cn_loan(x)
        placed = (await x.called(loan))["provider_message_id"]
        recording = "rec_2026-12-02_0001"
        assert (await x.result(placed, "right_party_verified", recording=recording,
                               agent="agent-7")).json() == {"result": "recorded"}
        await x.r.settle(loan.loan_id)
        status = await x.r.client.status(loan.loan_id)
        assert status.stage == "NEGOTIATION"
        assert "right_party_verified via voice" in status.stage_history[-1].reason
        [outcome] = [e for e in await x.r.rows(t.audit_events, loan_id=loan.loan_id)
                     if e["kind"] == "contact_outcome"]
        assert outcome["actor_id"] == "agent-7"
        assert outcome["data"]["details"]["recording"] == recording
        # CN: three answered calls a day; the dialer's conversation is the first
        assert (await x.ask(loan)).allowed
        await x.r.client.record_contact_outcome(loan.loan_id, ContactOutcomeReport(
            channel=Channel.VOICE, result=ContactResult.REACHED, actor=AGENT))
        assert (await x.ask(loan)).allowed  # an agent reports the third through the API
        token = (await KeyStore(ledger.engine).create("agent-api", "agent"))[1]
        reported = await x.api.post(f"/v1/loans/{loan.loan_id}/contact-outcomes", json={
            "channel": "voice", "result": "promise_taken",
            "recording": "https://rec.example/calls/3.wav"},
            headers={"Authorization": f"Bearer {token}"})
        assert reported.status_code == 202, reported.text
        await x.r.settle(loan.loan_id)
        kept = [e["data"]["details"].get("recording") for e in await x.r.rows(
            t.audit_events, loan_id=loan.loan_id) if e["kind"] == "contact_outcome"]
        assert kept == [recording, None, "https://rec.example/calls/3.wav"]
        capped = await x.ask(loan)
        assert capped.verdict is Verdict.DEFERRED and capped.code == "answered_calls"


async def test_a_promise_taken_on_the_dialer_starts_the_us_quiet_week(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    """Needs the lead's outcomes.py edit (answered results count as conversations)."""
    async with line(ts_env, ledger) as x:
        await advance_to_local(Harness(x.r.env, x.r.client, x.r.ledger, ""), NEW_YORK,
                               time(10, 0))
        loan = make_loan(await x.r.env.get_current_time(), dpd=7, tz="America/New_York",
                         jurisdiction="US-NY", currency="USD", language="en",
                         phones=[US_PHONE])
        placed = (await x.called(loan))["provider_message_id"]
        talked = await x.r.env.get_current_time()
        assert (await x.result(placed, "promise_taken")).json() == {"result": "recorded"}
        await x.r.settle(loan.loan_id)
        assert (await x.r.client.status(loan.loan_id)).stage == "NEGOTIATION"
        quiet = await x.ask(loan)  # Reg F 1006.14(b)(2)(i)(B): 7 days after a conversation
        assert quiet.verdict is Verdict.DEFERRED and quiet.code == "after_conversation"
        assert quiet.until is not None and quiet.until >= talked + timedelta(days=6)


def test_dialer_results_have_one_meaning_each() -> None:
    assert DialerResult("answered").contact_result is ContactResult.REACHED
    assert DialerResult("invalid_number").contact_result is ContactResult.WRONG_NUMBER
    talked = {r for r in DialerResult if r.contact_result.conversation}
    assert {r.value for r in talked} == {"answered", "right_party_verified", "promise_taken"}
    assert all(r.contact_result.engaged for r in talked)

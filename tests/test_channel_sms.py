"""SMS through an HTTP gateway, against real gateways on loopback (tests/sms_gateways.py)
that speak each profile's API: request shape, credentials, the idempotency key honoured,
which refusals are final, segment counting, and a loan whose SMS reach the gateway."""

from __future__ import annotations

import base64
import json
from datetime import time, timedelta
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from duecourse.channels import (
    UNKNOWABLE,
    ChannelError,
    OutboxChannel,
    OutgoingMessage,
    Sighting,
)
from duecourse.channels.router import ChannelRouter
from duecourse.channels.routing import ChannelSettingError, channels_from_settings
from duecourse.channels.sms import SmsChannel, sms_channel
from duecourse.channels.sms_segments import segments
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from tests.conftest import Harness, advance_to_local
from tests.factories import make_loan
from tests.sms_gateways import (
    GENERIC_TOKEN,
    TWILIO_SID,
    TWILIO_TOKEN,
    GenericGateway,
    TwilioGateway,
    serving,
)
from tests.test_workflow_faults import rig
from tests.test_workflow_negotiation import STANDARD

TO = "+8613800138000"
FROM = "+14155550100"
PUBLIC = "https://collections.lender.example"


def generic_settings(url: str, **extra: Any) -> Settings:
    return Settings(**{"sms_url": f"{url}/v1/messages", "sms_profile": "generic",
                       "sms_token": GENERIC_TOKEN, "sms_from": FROM, "public_url": PUBLIC,
                       **extra})


def twilio_settings(url: str, **extra: Any) -> Settings:
    return Settings(**{"sms_url": url, "sms_profile": "twilio", "sms_token": TWILIO_TOKEN,
                       "sms_account": TWILIO_SID, "sms_from": FROM, "public_url": PUBLIC,
                       **extra})


CHINESE = "您好\uff0c您的账单已逾期。"  # with a full-width comma, as the templates write


def sms(key: str = "case-1:notice-sms", to: str = TO, body: str = CHINESE) -> OutgoingMessage:
    return OutgoingMessage(idempotency_key=key, channel="sms", recipient=to, subject=None,
                           body=body, language="zh-CN", loan_id="L-1", case_id="case-1")


def channel(settings: Settings, ledger: Ledger) -> SmsChannel:
    return sms_channel(settings, ledger)


# ------------------------------------------------------------------------------ segments
@pytest.mark.parametrize(("text", "encoding", "units", "parts"), [
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),  # extension characters cost two septets
    ("a" * 159 + "€", "GSM-7", 161, 2),
    ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # the escape pair is not split
    ("{Pay} [now] ~ \\ | ^", "GSM-7", 27, 1),
    ("您" * 70, "UCS-2", 70, 1),
    ("您" * 71, "UCS-2", 71, 2),
    ("您" * 134, "UCS-2", 134, 2),
    ("您" * 135, "UCS-2", 135, 3),
    ("a" * 69 + "ç", "UCS-2", 70, 1),  # one character outside GSM-7 turns the whole text
    ("🙂" * 35, "UCS-2", 70, 1),  # outside the BMP: two code units each
    ("🙂" * 34 + "a", "UCS-2", 69, 1),
    ("a" * 66 + "🙂" + "a" * 66, "UCS-2", 134, 3),  # the surrogate pair is not split
])
def test_segments_count_gsm7_and_ucs2(text: str, encoding: str, units: int,
                                      parts: int) -> None:
    counted = segments(text)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, parts)


# ------------------------------------------------------------------------------- generic
async def test_generic_profile_posts_json_with_bearer_and_idempotency_key(
        ledger: Ledger) -> None:
    async with serving(GenericGateway()) as gw:
        adapter = channel(generic_settings(gw.url), ledger)
        message_id = await adapter.send(sms())
        assert adapter.name == "sms:generic:127.0.0.1"
        [request] = gw.requests
        assert (request.method, request.path) == ("POST", "/v1/messages")
        assert request.headers["authorization"] == f"Bearer {GENERIC_TOKEN}"
        assert request.headers["idempotency-key"] == "case-1:notice-sms"
        assert json.loads(request.body) == {
            "to": TO, "from": FROM, "text": CHINESE,
            "idempotency_key": "case-1:notice-sms",
            "status_callback": f"{PUBLIC}/v1/inbound/sms/status"}
        assert message_id == gw.messages["case-1:notice-sms"].id


async def test_generic_same_key_twice_is_one_message_with_one_id(ledger: Ledger) -> None:
    async with serving(GenericGateway()) as gw:
        adapter = channel(generic_settings(gw.url), ledger)
        first = await adapter.send(sms())
        again = await adapter.send(sms())
        other = await adapter.send(sms(key="case-1:reminder-sms"))
        assert first == again != other
        assert len(gw.messages) == 2 and len(gw.requests) == 3


async def test_generic_find_looks_the_key_up(ledger: Ledger) -> None:
    async with serving(GenericGateway()) as gw:
        adapter = channel(generic_settings(gw.url), ledger)
        assert await adapter.find("case-1:notice-sms") == Sighting(known=True)
        message_id = await adapter.send(sms())
        found = await adapter.find("case-1:notice-sms")
        assert found.known and found.message_id == message_id
        assert found.accepted_at is not None and found.accepted_at.tzinfo is not None
        assert gw.requests[-1].path == "/v1/messages/case-1%3Anotice-sms"


@pytest.mark.parametrize(("status", "permanent"), [
    (400, True), (403, True), (422, True), (429, False), (409, False), (500, False),
    (503, False)])
async def test_generic_4xx_is_final_and_429_or_5xx_is_retried(
        ledger: Ledger, status: int, permanent: bool) -> None:
    async with serving(GenericGateway(fail_next=[status])) as gw:
        adapter = channel(generic_settings(gw.url), ledger)
        with pytest.raises(ChannelError) as failed:
            await adapter.send(sms())
        assert failed.value.permanent is permanent
        assert f"HTTP {status}" in str(failed.value)
        if not permanent:  # the retry under the same key goes through, once
            assert await adapter.send(sms()) == gw.messages["case-1:notice-sms"].id
            assert len(gw.messages) == 1


async def test_a_wrong_token_is_final_and_never_quoted(ledger: Ledger) -> None:
    async with serving(GenericGateway()) as gw:
        adapter = channel(generic_settings(gw.url, sms_token="not-the-token"), ledger)
        with pytest.raises(ChannelError) as failed:
            await adapter.send(sms())
        assert failed.value.permanent and "HTTP 401" in str(failed.value)
        assert "not-the-token" not in str(failed.value)


async def test_a_gateway_that_does_not_answer_is_retried(ledger: Ledger) -> None:
    async with serving(GenericGateway()) as gw:
        url = gw.url
    adapter = channel(generic_settings(url), ledger)  # the server is gone: refused
    with pytest.raises(ChannelError) as failed:
        await adapter.send(sms())
    assert not failed.value.permanent and "did not answer" in str(failed.value)


@pytest.mark.parametrize("number", ["13800138000", "+86 138", "+447700900123", "call me"])
async def test_an_invalid_number_is_final_without_a_request_or_the_number(
        ledger: Ledger, number: str) -> None:
    async with serving(GenericGateway()) as gw:
        adapter = channel(generic_settings(gw.url), ledger)
        with pytest.raises(ChannelError) as failed:
            await adapter.send(sms(to=number))
        assert failed.value.permanent and "E.164" in str(failed.value)
        assert number not in str(failed.value)
        assert gw.requests == []


async def test_a_number_is_sent_in_e164_form(ledger: Ledger) -> None:
    async with serving(GenericGateway()) as gw:
        await channel(generic_settings(gw.url), ledger).send(sms(to="+86 138-0013-8000"))
        assert json.loads(gw.requests[0].body)["to"] == TO


# -------------------------------------------------------------------------------- twilio
async def test_twilio_profile_posts_a_form_with_basic_auth_and_idempotency_token(
        ledger: Ledger) -> None:
    async with serving(TwilioGateway()) as gw:
        adapter = channel(twilio_settings(gw.url), ledger)
        message_id = await adapter.send(sms(body="Your payment is overdue."))
        assert adapter.name == "sms:twilio:127.0.0.1"
        [request] = gw.requests
        assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        basic = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {basic}"
        assert request.headers["i-twilio-idempotency-token"] == "case-1:notice-sms"
        assert parse_qs(request.body.decode()) == {
            "To": [TO], "From": [FROM], "Body": ["Your payment is overdue."],
            "StatusCallback": [f"{PUBLIC}/v1/inbound/twilio/status"]}
        assert message_id.startswith("SM") and message_id == gw.messages[
            "case-1:notice-sms"].id


async def test_twilio_messaging_service_sender_and_same_token_twice(ledger: Ledger) -> None:
    service = "MG" + "fedcba9876543210" * 2
    async with serving(TwilioGateway()) as gw:
        adapter = channel(twilio_settings(gw.url, sms_from=service), ledger)
        assert await adapter.send(sms()) == await adapter.send(sms())
        assert len(gw.messages) == 1
        assert parse_qs(gw.requests[0].body.decode())["MessagingServiceSid"] == [service]
        assert await adapter.find("case-1:notice-sms") == UNKNOWABLE


async def test_twilio_invalid_to_is_final_and_its_message_is_not_repeated(
        ledger: Ledger) -> None:
    async with serving(TwilioGateway(refused={TO: 21211})) as gw:
        adapter = channel(twilio_settings(gw.url), ledger)
        with pytest.raises(ChannelError) as failed:
            await adapter.send(sms())
        assert failed.value.permanent
        assert "21211" in str(failed.value) and "not a valid phone number" in str(failed.value)
        assert TO not in str(failed.value) and "+86" not in str(failed.value)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_twilio_429_and_5xx_are_retried(ledger: Ledger, status: int) -> None:
    async with serving(TwilioGateway(fail_next=[status])) as gw:
        adapter = channel(twilio_settings(gw.url), ledger)
        with pytest.raises(ChannelError) as failed:
            await adapter.send(sms())
        assert not failed.value.permanent and f"HTTP {status}" in str(failed.value)
        await adapter.send(sms())
        assert len(gw.messages) == 1


async def test_twilio_wrong_credentials_are_final(ledger: Ledger) -> None:
    async with serving(TwilioGateway()) as gw:
        adapter = channel(twilio_settings(gw.url, sms_token="wrong-token"), ledger)
        with pytest.raises(ChannelError) as failed:
            await adapter.send(sms())
        assert failed.value.permanent and "20003" in str(failed.value)


# ------------------------------------------------------------------------------ settings
TOKEN = "s3cret-token-value"


@pytest.mark.parametrize(("settings", "names"), [
    ({"sms_url": "ftp://sms.example/v1"}, "DUECOURSE_SMS_URL"),
    ({"sms_url": "sms.example/v1"}, "DUECOURSE_SMS_URL"),
    ({"sms_url": "http://sms.example/v1"}, "DUECOURSE_SMS_URL"),  # a token over plain http
    ({"sms_url": "https://user:pw@sms.example/v1"}, "DUECOURSE_SMS_URL"),
    ({"sms_token": None}, "DUECOURSE_SMS_TOKEN"),
    ({"sms_from": None}, "DUECOURSE_SMS_FROM"),
    ({"sms_from": "+1"}, "DUECOURSE_SMS_FROM"),
    ({"sms_from": "A sender id too long"}, "DUECOURSE_SMS_FROM"),
    ({"sms_account": TWILIO_SID}, "DUECOURSE_SMS_ACCOUNT"),  # generic: not used
    ({"sms_profile": "twilio", "sms_url": "https://api.twilio.com"}, "DUECOURSE_SMS_ACCOUNT"),
    ({"sms_profile": "twilio", "sms_account": "AC123"}, "DUECOURSE_SMS_ACCOUNT"),
    ({"sms_profile": "twilio", "sms_account": TWILIO_SID,
      "sms_url": f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"},
     "DUECOURSE_SMS_URL"),
    ({"public_url": "collections.lender.example"}, "DUECOURSE_PUBLIC_URL"),
])
async def test_a_bad_setting_is_one_sentence_naming_it_without_the_token(
        ledger: Ledger, settings: dict[str, Any], names: str) -> None:
    base = {"sms_url": "https://sms.example/v1/messages", "sms_token": TOKEN,
            "sms_from": "Acme", "public_url": PUBLIC}
    with pytest.raises(ChannelSettingError) as refused:
        channels_from_settings(Settings(**{**base, **settings}), ledger)
    assert names in str(refused.value) and TOKEN not in str(refused.value)


async def test_good_settings_route_sms_to_the_gateway(ledger: Ledger) -> None:
    settings = Settings(sms_url="https://api.twilio.com/", sms_profile="twilio",
                        sms_token=TOKEN, sms_account=TWILIO_SID, sms_from="Acme")
    routes = channels_from_settings(settings, ledger).routes()
    assert routes["sms"] == "sms:twilio:api.twilio.com" and routes["email"] == "outbox"


# ------------------------------------------------------------------------- end to end
async def test_a_loans_sms_reach_the_gateway_and_the_ledger_shows_them(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    async with serving(GenericGateway()) as gw:
        adapter = sms_channel(generic_settings(gw.url), ledger)
        router = ChannelRouter(OutboxChannel(ledger), {"sms": adapter})
        async with rig(ts_env, ledger, channel=router) as r:
            await advance_to_local(Harness(ts_env, r.client, ledger, ""),
                                   ZoneInfo("Asia/Shanghai"), time(9, 0))
            loan = make_loan(await ts_env.get_current_time(), dpd=1)  # notice-sms 10:00
            await r.client.start(loan, STANDARD)
            await ts_env.sleep(timedelta(hours=1, minutes=10))
            rows = {c["step"]: c for c in await r.rows(t.contact_attempts,
                                                        loan_id=loan.loan_id)}
        notice = rows["notice-sms"]
        [received] = [m for m in gw.messages.values() if m.key == notice["idempotency_key"]]
        assert notice["status"] == "sent"
        assert notice["sent_via"] == "sms:generic:127.0.0.1"
        assert notice["provider_message_id"] == received.id
        assert (received.to, received.sender, received.text) == (TO, FROM, notice["body"])
        counted = segments(notice["body"])
        assert counted.encoding == "UCS-2", "a Chinese reminder is UCS-2"
        assert (notice["segments"], notice["encoding"]) == (counted.segments, "UCS-2")
        assert notice["segments"] >= 1
        email = rows["notice-email"]
        assert email["sent_via"] == "outbox" and email["segments"] is None
        assert len(gw.messages) == len({r["idempotency_key"] for r in rows.values()
                                        if r["channel"] == "sms" and r["status"] == "sent"})

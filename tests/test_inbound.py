"""What comes back (issue 13 item 4): signed SMS replies, receipts and bounces posted to the
real API app, acted on by a real worker on the time-skipping server, recorded in a real
ledger. The channel for answers is the outbox, so every answer is a row to read."""

from __future__ import annotations

import asyncio
import json
import time as clock
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.domain.compliance.requests import PreferenceChange
from duecourse.domain.events import signature_header
from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel
from duecourse.domain.work.queue import TaskKind
from duecourse.inbound.replies import ReplyKind, classify
from duecourse.inbound.signatures import twilio_signature, verify_twilio
from duecourse.policies import load_policy
from duecourse.settings import Settings
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.conftest import Harness, advance_to_local
from tests.factories import AGENT, make_loan
from tests.support.cli import run_cli

SHANGHAI = ZoneInfo("Asia/Shanghai")
SECRET = "inbound-secret-for-tests-0123456789"
TOKEN = "twilio-auth-token-for-tests"
PUBLIC = "https://collect.lender.example"


def settings(secret: str | None = SECRET) -> Settings:
    return Settings(lender_name="Acme Lending", lender_contact="400-800-1234",
                    webhook_allow_private=True, public_url=PUBLIC,
                    inbound_secret=SecretStr(secret) if secret else None,
                    sms_token=SecretStr(TOKEN), sms_profile="twilio")


@dataclass
class Inbound:
    h: Harness
    http: httpx.AsyncClient
    agent_key: str

    async def post(self, path: str, payload: dict[str, Any], *, secret: str = SECRET,
                   at: int | None = None, signed: bool = True) -> httpx.Response:
        body = json.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["Duecourse-Signature"] = signature_header(
                secret, at if at is not None else int(clock.time()), body)
        return await self.http.post(path, content=body, headers=headers)

    async def reply(self, number: str, text: str, received: datetime | None = None,
                    **kwargs: Any) -> httpx.Response:
        return await self.post("/v1/inbound/sms", {
            "from": number, "to": "+8610690000", "text": text,
            "received_at": (received or datetime.now(UTC)).isoformat()}, **kwargs)

    async def twilio(self, path: str, form: dict[str, str],
                     token: str = TOKEN) -> httpx.Response:
        signature = twilio_signature(token, PUBLIC + path, form.items())
        return await self.http.post(path, content=urlencode(form), headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature})

    async def rows(self, table: Any, **where: Any) -> list[dict[str, Any]]:
        return await self.h.rows(table, **where)


@pytest.fixture
async def inbound(harness: Harness) -> AsyncIterator[Inbound]:
    chosen = settings()
    services = Services(client=harness.client, ledger=harness.ledger,
                        keys=KeyStore(harness.ledger.engine), settings=chosen)
    _, agent_key = await services.keys.create("agent-1", "agent")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(
            app=create_app(chosen, services)), base_url="http://api") as http:
        yield Inbound(harness, http, agent_key)


def phone() -> str:
    return f"+86138{uuid4().int % 10**8:08d}"


async def texted_loan(i: Inbound) -> LoanIntake:
    """A loan whose overdue notice went out by SMS (and email) to its own number."""
    await advance_to_local(i.h, SHANGHAI, time(12, 0))
    loan = make_loan(await i.h.env.get_current_time(), dpd=2, phones=[phone()],
                     email=f"b-{uuid4().hex[:8]}@example.com")
    await i.h.client.start(loan, load_policy("standard"))
    await i.h.env.sleep(timedelta(minutes=5))
    sent = {r["step"]: r for r in await i.rows(t.contact_attempts, loan_id=loan.loan_id)
            if r["status"] == "sent"}
    assert {"notice-sms", "notice-email"} <= set(sent), sent
    return loan


def answers_to(rows: list[dict[str, Any]], number: str) -> list[str]:
    return [r["body"] for r in rows if r["recipient"] == number and r["channel"] == "sms"
            and r["idempotency_key"].startswith("inbound-")]


async def test_stop_opts_out_at_once_is_confirmed_once_and_no_sms_follows(
        inbound: Inbound) -> None:
    i = inbound
    loan = await texted_loan(i)
    number = loan.borrower.phones[0]
    at = datetime.now(UTC)
    first = await i.reply(number, " Stop ", at)
    assert first.status_code == 200 and first.json() == {"result": "opted_out"}, first.text
    status = await i.h.client.status(loan.loan_id)
    assert "sms" in status.standing.opted_out, "opted out at once"
    again = await i.reply(number, " Stop ", at)  # the gateway delivers it twice
    assert again.json() == {"result": "duplicate"}
    await i.h.client.update_contact_preferences(loan.loan_id, PreferenceChange(
        opt_in=[Channel.SMS], actor=AGENT, note="borrower asked on the phone"))
    assert "sms" not in (await i.h.client.status(loan.loan_id)).standing.opted_out
    later = await i.reply(number, "TD", at + timedelta(minutes=1))  # and the borrower again
    assert later.json() == {"result": "already_opted_out"}, "confirmed once only"
    assert "sms" in (await i.h.client.status(loan.loan_id)).standing.opted_out, \
        "a STOP always stops, also after an opt-in"
    confirmations = answers_to(await i.rows(t.outbox_messages), number)
    assert len(confirmations) == 1 and "unsubscribed" not in confirmations[0]  # zh-CN
    assert "退订" in confirmations[0]
    opted = [r for r in await i.rows(t.audit_events, loan_id=loan.loan_id)
             if r["kind"] == "opted_out"]
    assert len(opted) == 2 and {o["actor_kind"] for o in opted} == {"borrower"}
    assert "SMS reply" in opted[0]["data"]["details"]["note"]
    consent = await i.rows(t.consents, borrower_id=loan.borrower.borrower_id)
    assert [(c["channel"], c["action"], c["source"]) for c in consent] == [
        ("sms", "withdrawn", "sms_reply")]
    await i.h.env.sleep(timedelta(days=3))  # past reminder-sms (due date + 4 days 18 h)
    sms = [r["step"] for r in await i.rows(t.contact_attempts, loan_id=loan.loan_id)
           if r["channel"] == "sms" and r["status"] == "sent"]
    assert sms == ["notice-sms"], "no SMS after STOP"


async def test_help_is_answered_and_any_other_reply_engages_and_opens_a_task(
        inbound: Inbound) -> None:
    i = inbound
    loan = await texted_loan(i)
    number = loan.borrower.phones[0]
    helped = await i.reply(number, "help")
    assert helped.json() == {"result": "helped"}, helped.text
    help_text = answers_to(await i.rows(t.outbox_messages), number)
    assert len(help_text) == 1 and "400-800-1234" in help_text[0]
    assert "Acme Lending" in help_text[0]
    talk = await i.reply(number, "I can pay 500 on Friday")
    assert talk.json() == {"result": "engaged"}, talk.text
    await i.h.settle(loan.loan_id)
    status = await i.h.client.status(loan.loan_id)
    assert status.stage == "NEGOTIATION"
    assert "borrower engaged" in status.stage_history[-1].reason
    replies = [task for task in status.open_tasks if task.subject == "sms reply"]
    assert len(replies) == 1 and replies[0].kind is TaskKind.CALL_BORROWER
    assert "I can pay 500 on Friday" in replies[0].note
    assert "sms" not in status.standing.opted_out
    agent = {"Authorization": f"Bearer {i.agent_key}"}
    consents = f"/v1/loans/{loan.loan_id}/consents"
    given = await i.http.post(consents, headers=agent, json={
        "channel": "email", "action": "withdrawn", "source": "call"})
    assert given.status_code == 201 and given.json()["actor"] == "agent:agent-1", given.text
    assert "email" in (await i.h.client.status(loan.loan_id)).standing.opted_out
    listed = (await i.http.get(consents, headers=agent)).json()["consents"]
    assert [(c["channel"], c["action"], c["source"]) for c in listed] == [
        ("email", "withdrawn", "call")]
    assert (await i.http.get(consents)).status_code == 401


async def test_unknown_senders_are_kept_and_unsigned_posts_record_nothing(
        inbound: Inbound) -> None:
    i = inbound
    stranger = phone()
    kept = await i.reply(stranger, "who is this?")
    assert kept.json() == {"result": "unknown_sender"}, kept.text
    [row] = await i.rows(t.inbound_replies)
    assert row["sender"] == stranger and row["loan_id"] is None
    assert row["outcome"] == "unknown_sender" and row["text"] == "who is this?"
    code, out, err = await run_cli(i.h, "replies", "--unknown", "--json")
    assert code == 0, err
    assert [(r["sender"], r["text"], r["loan_id"]) for r in json.loads(out)] == [
        (stranger, "who is this?", None)], "kept for a person to review"
    now = int(clock.time())
    for refused in [await i.reply(stranger, "STOP", signed=False),
                    await i.reply(stranger, "STOP", at=now - 6 * 60),
                    await i.reply(stranger, "STOP", secret="not-the-secret-at-all"),
                    await i.post("/v1/inbound/sms/status", {
                        "provider_message_id": "m-1", "status": "delivered"}, signed=False),
                    await i.post("/v1/inbound/email/bounce", {
                        "message_id": "m-1", "recipient": "a@b.example", "kind": "hard"},
                        at=now - 6 * 60),
                    await i.twilio("/v1/inbound/twilio/sms", {
                        "From": stranger, "To": "+15005550006", "Body": "STOP",
                        "MessageSid": "SM1"}, token="wrong-token"),
                    # malformed headers: refused, never a 500
                    *[await i.http.post("/v1/inbound/sms", content=b"{}", headers={
                        "Content-Type": "application/json",
                        "Duecourse-Signature": h.encode()})
                      for h in (f"t={'9' * 400},v1={'0' * 64}", "t=1,v1=\u00e9\u00e9",
                                f"t=\u00b2,v1={'0' * 64}")],
                    await i.http.post("/v1/inbound/twilio/sms", content=b"Body=STOP",
                                      headers={"Content-Type":
                                               "application/x-www-form-urlencoded",
                                               "X-Twilio-Signature": "\u00e9t\u00e9".encode()})]:
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    unset = settings(secret=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(
            unset, Services(client=i.h.client, ledger=i.h.ledger,
                            keys=KeyStore(i.h.ledger.engine), settings=unset))),
            base_url="http://api") as http:
        body = json.dumps({"from": stranger, "to": "+1", "text": "STOP",
                           "received_at": datetime.now(UTC).isoformat()})
        answer = await http.post("/v1/inbound/sms", content=body, headers={
            "Content-Type": "application/json",
            "Duecourse-Signature": signature_header(SECRET, now, body)})
        assert answer.status_code == 401 and "DUECOURSE_INBOUND_SECRET" in answer.text
    generic = settings().model_copy(update={"sms_profile": "generic"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(
            generic, Services(client=i.h.client, ledger=i.h.ledger,
                              keys=KeyStore(i.h.ledger.engine), settings=generic))),
            base_url="http://api") as http:
        form = {"From": stranger, "To": "+15005550006", "Body": "STOP", "MessageSid": "SM9"}
        forged = await http.post("/v1/inbound/twilio/sms", content=urlencode(form), headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(TOKEN, PUBLIC + "/v1/inbound/twilio/sms",
                                                   form.items())})
        assert forged.status_code == 401, "a generic gateway's token signs no Twilio post"
    for table in (t.inbound_replies, t.delivery_receipts, t.unreachable_addresses,
                  t.consents):
        assert len(await i.rows(table)) == (1 if table is t.inbound_replies else 0)
    bad = await i.post("/v1/inbound/sms", {"from": stranger, "text": "hi",
                                           "received_at": "yesterday"})
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "to" in bad.json()["detail"] and "received_at" in bad.json()["detail"]
    wrong = await i.post("/v1/inbound/sms/status", {"provider_message_id": "m-1",
                                                    "status": "read"})
    assert wrong.status_code == 422 and "status" in wrong.json()["detail"]
    twilio = await i.twilio("/v1/inbound/twilio/sms", {
        "From": stranger, "To": "+15005550006", "Body": "hello", "MessageSid": "SM2"})
    assert twilio.status_code == 200 and twilio.headers["duecourse-result"] == \
        "unknown_sender"
    assert len(await i.rows(t.inbound_replies)) == 2


async def test_receipts_update_the_attempt_once_and_invalid_addresses_become_unreachable(
        inbound: Inbound) -> None:
    i = inbound
    loan = await texted_loan(i)
    rows = {r["step"]: r for r in await i.rows(t.contact_attempts, loan_id=loan.loan_id)}
    sms, email = rows["notice-sms"], rows["notice-email"]
    receipt = {"provider_message_id": sms["provider_message_id"], "status": "undelivered",
               "error": "carrier_busy"}
    first = await i.post("/v1/inbound/sms/status", receipt)
    assert first.json() == {"result": "recorded"}, first.text
    assert (await i.post("/v1/inbound/sms/status", receipt)).json() == {
        "result": "duplicate"}
    [kept] = await i.rows(t.delivery_receipts)
    assert kept["attempt_id"] == sms["id"] and kept["status"] == "undelivered"
    assert await i.rows(t.unreachable_addresses) == [], "a busy carrier is no bad number"
    failed = await i.twilio("/v1/inbound/twilio/status", {
        "MessageSid": sms["provider_message_id"], "MessageStatus": "failed",
        "ErrorCode": "21211"})
    assert failed.headers["duecourse-result"] == "recorded", failed.text
    bounce = {"message_id": f"<{email['provider_message_id']}>",
              "recipient": email["recipient"], "kind": "hard",
              "diagnostic": "550 5.1.1 user unknown"}
    assert (await i.post("/v1/inbound/email/bounce", bounce)).json() == {
        "result": "recorded"}
    assert (await i.post("/v1/inbound/email/bounce", bounce)).json() == {
        "result": "duplicate"}
    marked = {(u["channel"], u["address"]) for u in await i.rows(t.unreachable_addresses)}
    assert marked == {("sms", sms["recipient"]), ("email", email["recipient"])}
    wrong = [(r["data"]["details"]["channel"], r["data"]["details"]["address"])
             for r in await i.rows(t.audit_events, loan_id=loan.loan_id)
             if r["kind"] == "contact_outcome"
             and r["data"]["details"]["result"] == "wrong_number"]
    assert sorted(wrong) == [("email", email["recipient"]), ("sms", sms["recipient"])]
    statuses = [r["status"] for r in await i.rows(t.delivery_receipts)]
    assert statuses == ["undelivered", "failed", "bounced"]


def test_twilio_signatures_match_twilios_documented_example() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    assert twilio_signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert verify_twilio("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, params.items())
    assert not verify_twilio("12345", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url + "&x=1",
                             params.items())
    assert not verify_twilio(None, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, params.items())


@pytest.mark.parametrize(("text", "kind"), [
    ("STOP", ReplyKind.STOP), (" stop. ", ReplyKind.STOP), ("Unsubscribe", ReplyKind.STOP),
    ("退订", ReplyKind.STOP), ("t d", ReplyKind.STOP), ("\uff33\uff34\uff2f\uff30", ReplyKind.STOP),
    ("HELP", ReplyKind.HELP), ("帮助", ReplyKind.HELP), ("Start", ReplyKind.START),
    ("UNSTOP!", ReplyKind.START),
    ("stop calling me at work", ReplyKind.OTHER), ("I can pay Friday", ReplyKind.OTHER)])
def test_replies_are_classified_by_keyword(text: str, kind: ReplyKind) -> None:
    assert classify(text) is kind


def wrong_numbers(rows: list[dict[str, Any]]) -> list[str]:
    return [r["data"]["details"]["address"] for r in rows if r["kind"] == "contact_outcome"
            and r["data"]["details"]["result"] == "wrong_number"]


async def test_concurrent_receipts_about_one_number_report_it_once(inbound: Inbound) -> None:
    """The receipt's insert decides who acts, then the mark's: two identical posts at once,
    and a second status about the same number at the same moment, report one wrong number."""
    i = inbound
    loan = await texted_loan(i)
    sms = next(r for r in await i.rows(t.contact_attempts, loan_id=loan.loan_id)
               if r["step"] == "notice-sms")
    receipt = {"provider_message_id": sms["provider_message_id"], "status": "failed",
               "error": "invalid_number"}
    other = {**receipt, "status": "undelivered"}
    answers = await asyncio.gather(*(i.post("/v1/inbound/sms/status", body)
                                     for body in (receipt, receipt, other)))
    results = sorted(a.json()["result"] for a in answers)
    assert results == ["duplicate", "recorded", "recorded"], [a.text for a in answers]
    await i.h.settle(loan.loan_id)
    assert wrong_numbers(await i.rows(t.audit_events, loan_id=loan.loan_id)) == \
        [sms["recipient"]], "reported once"
    assert [u["address"] for u in await i.rows(t.unreachable_addresses)] == [sms["recipient"]]
    assert sorted(r["status"] for r in await i.rows(t.delivery_receipts)) == \
        ["failed", "undelivered"]


async def test_after_a_stop_only_the_borrower_can_consent_to_sms_again(
        inbound: Inbound) -> None:
    i = inbound
    loan = await texted_loan(i)
    assert (await i.reply(loan.borrower.phones[0], "STOP")).json() == {"result": "opted_out"}
    agent = {"Authorization": f"Bearer {i.agent_key}"}
    consents = f"/v1/loans/{loan.loan_id}/consents"
    refused = await i.http.post(consents, headers=agent, json={
        "channel": "sms", "action": "given", "source": "call"})
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "only the borrower can give it again" in refused.json()["detail"]
    assert "borrower_signed_form" in refused.json()["detail"]
    assert "sms" in (await i.h.client.status(loan.loan_id)).standing.opted_out
    # an agent's own withdrawal is the agent's to undo; the borrower's needs the borrower,
    # and an agent cannot vouch for the borrower's word
    for channel, action, source, code in (("email", "withdrawn", "call", 201),
                                          ("email", "given", "call", 201),
                                          ("sms", "given", "borrower_sms_start", 403),
                                          ("sms", "given", "borrower_signed_form", 403)):
        done = await i.http.post(consents, headers=agent, json={
            "channel": channel, "action": action, "source": source})
        assert done.status_code == code, done.text
    assert "replies START" in done.json()["detail"] or "only by a" in done.json()["detail"]
    assert "sms" in (await i.h.client.status(loan.loan_id)).standing.opted_out
    number = loan.borrower.phones[0]
    start = await i.reply(number, "START")  # the borrower's own re-consent
    assert start.json() == {"result": "opted_in"}, start.text
    assert "sms" not in (await i.h.client.status(loan.loan_id)).standing.opted_out
    assert (await i.reply(number, "unstop")).json() == {"result": "not_opted_out"}
    confirmations = answers_to(await i.rows(t.outbox_messages), number)
    assert len(confirmations) == 2 and "重新订阅" in confirmations[1], "START confirmed once"
    listed = (await i.http.get(consents, headers=agent)).json()["consents"]
    assert [(c["channel"], c["action"], c["source"]) for c in listed] == [
        ("sms", "withdrawn", "sms_reply"), ("email", "withdrawn", "call"),
        ("email", "given", "call"), ("sms", "given", "borrower_sms_start")]

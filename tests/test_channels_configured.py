"""Issue 13's "done when", first half: a loan handed over with email and SMS configured -
by the settings a lender sets, through the real routing - receives its reminders at a
real SMTP server and a real (local) SMS gateway, with the required disclosures and
opt-out; every other kind stays in the outbox."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duecourse.channels.routing import channels_from_settings
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from tests.factories import daytime_zone, make_loan
from tests.sms_gateways import GENERIC_TOKEN, GenericGateway, serving
from tests.test_channel_email import Mailbox, parts, smtp_server
from tests.test_workflow_faults import rig
from tests.test_workflow_negotiation import STANDARD

SENDER = "+14155550100"


def lender_settings(smtp_port: int, gateway_url: str) -> Settings:
    """What a lender sets: one URL per channel kind, the public URL and the secret."""
    return Settings(
        email_url=SecretStr(f"smtp://mailer:p%40ss@127.0.0.1:{smtp_port}"
                            "?from=collections@lender.example"),
        sms_url=f"{gateway_url}/v1/messages", sms_profile="generic",
        sms_token=SecretStr(GENERIC_TOKEN), sms_from=SENDER,
        public_url="https://collect.lender.example",
        inbound_secret=SecretStr("inbound-secret-for-tests-0123456789"),
        lender_name="Acme Lending", lender_contact="1-800-555-0100")


async def test_a_us_loan_gets_its_reminders_by_real_email_and_sms_with_disclosures(
        ts_env: WorkflowEnvironment, ledger: Ledger) -> None:
    box = Mailbox()
    now = await ts_env.get_current_time()
    loan = make_loan(now, dpd=2, tz=daytime_zone(now), currency="USD", jurisdiction="US",
                     language="en", email="sam.lee@example.com", name="Sam Lee",
                     phones=["+12025550143"], address="1 Main St, Springfield, IL 62701")
    async with serving(GenericGateway()) as gateway:
        with smtp_server(box) as port:
            router = channels_from_settings(lender_settings(port, gateway.url), ledger)
            assert router.routes() == {"sms": "sms:generic:127.0.0.1",
                                       "email": "smtp:127.0.0.1", "voice": "outbox",
                                       "letter": "outbox", "visit": "outbox"}
            async with rig(ts_env, ledger, channel=router) as r:
                await r.client.start(loan, STANDARD)
                await ts_env.sleep(timedelta(minutes=5))
                await r.settle(loan.loan_id)
                sent = {a["step"]: a for a in await r.rows(t.contact_attempts,
                                                            loan_id=loan.loan_id)
                        if a["status"] == "sent"}
                outbox = await r.rows(t.outbox_messages)
    sms, email = sent["notice-sms"], sent["notice-email"]
    [text] = [m for m in gateway.messages.values() if m.key == sms["idempotency_key"]]
    assert (sms["sent_via"], sms["provider_message_id"]) == ("sms:generic:127.0.0.1",
                                                             text.id)
    assert text.to == "+12025550143" and text.sender == SENDER
    flat = " ".join(text.text.split())
    assert "This is a communication from a debt collector." in flat
    assert "Reply STOP to stop text messages." in flat, "the US SMS opt-out"
    assert sms["encoding"] == "GSM-7" and sms["segments"] >= 1
    [mail] = box.to("sam.lee@example.com")
    assert email["sent_via"] == "smtp:127.0.0.1"
    assert email["provider_message_id"] == mail["Message-ID"]
    for part in parts(mail):
        flat = " ".join(part.split())
        assert "This is a communication from a debt collector." in flat
        assert "reply UNSUBSCRIBE" in flat, "the US email opt-out in both parts"
    assert mail["List-Unsubscribe"].startswith("<https://collect.lender.example/v1/"
                                               "unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert not [m for m in outbox if m["idempotency_key"] in
                (sms["idempotency_key"], email["idempotency_key"])], \
        "what went to a provider is not also in the outbox"

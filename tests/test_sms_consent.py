"""Consent before the first SMS (issue 13 item 4): a policy that sets `sms_needs_consent`
sends no SMS to the borrower until their consent is recorded, and none again once it is
withdrawn; without the option nothing changes. The rule in the domain, then a real worker
on the time-skipping server with consent recorded through the real consents API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.audit import run_audit
from duecourse.domain.case.aggregate import Collection
from duecourse.domain.compliance import RecipientKind, Verdict
from duecourse.domain.compliance.packs import departures, pack_for
from duecourse.domain.compliance.requests import ContactRequest, PreferenceChange
from duecourse.domain.contact.protections import change_preferences
from duecourse.domain.entries import EventRecorded
from duecourse.domain.policy import Channel, Policy
from duecourse.policies import load_policy
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.conftest import Harness, advance_to_local, settings_for_tests
from tests.factories import AGENT, make_loan

NEW_YORK, SHANGHAI = ZoneInfo("America/New_York"), ZoneInfo("Asia/Shanghai")
LAW = load_policy("standard").model_copy(update={"compliance": {}, "segments": {}})
CONSENTING = LAW.model_copy(update={"compliance": {"*": {"sms_needs_consent": True}}})
"""The standard policy asking for recorded consent to SMS in every country."""
PHONE = "+12125550134"


def us(policy: Policy) -> Collection:
    now = datetime(2026, 11, 28, 10, 0, tzinfo=NEW_YORK).astimezone(UTC)
    loan = make_loan(now, dpd=10, tz="America/New_York", jurisdiction="US-NY",
                     currency="USD", language="en", phones=[PHONE])
    return Collection.begin(loan, policy, now, case_id="c-us")[0]


def consent(c: Collection, action: str, at: datetime) -> list[str]:
    entries = change_preferences(c, PreferenceChange(
        sms_consent=action, actor=AGENT, note="application form"), at)  # type: ignore[arg-type]
    return [e.event for e in entries if isinstance(e, EventRecorded)]


# ------------------------------------------------------------------ the rule
def test_an_sms_needs_recorded_consent_only_where_the_policy_asks() -> None:
    at = datetime(2026, 12, 1, 11, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert us(LAW).decide_contact(Channel.SMS, PHONE, at).allowed, "off by default"
    assert not pack_for("US").sms_needs_consent and not pack_for("CN").sms_needs_consent

    c = us(CONSENTING)
    blocked = c.decide_contact(Channel.SMS, PHONE, at)
    assert blocked.verdict is Verdict.BLOCKED and blocked.code == "sms_consent"
    assert "47 USC 227" in blocked.rule and "no consent to SMS" in blocked.detail
    assert c.decide_contact(Channel.VOICE, PHONE, at).allowed, "only SMS needs it"
    assert c.decide_contact(Channel.SMS, "+12125550199", at,
                            recipient_kind=RecipientKind.GUARANTOR,
                            discloses_debt=False).code != "sms_consent", "the borrower's"

    given_at = at + timedelta(minutes=5)
    assert consent(c, "given", given_at) == ["sms_consent"]
    assert consent(c, "given", given_at) == [], "consent on record is not recorded twice"
    assert c.decide_contact(Channel.SMS, PHONE, at).code == "sms_consent", \
        "consent counts from when it was given"
    assert c.decide_contact(Channel.SMS, PHONE, given_at).allowed

    later = given_at + timedelta(hours=1)
    assert consent(c, "withdrawn", later) == ["sms_consent_withdrawn"]
    assert c.state.contacting.standing.sms_consent_at is None
    assert c.decide_contact(Channel.SMS, PHONE, later).code == "sms_consent"
    assert consent(c, "withdrawn", later) == [], "nothing to withdraw"


def test_the_option_is_listed_as_a_stricter_departure_and_checked_on_load() -> None:
    listed = departures("US", {"US": {"sms_needs_consent": True}})
    assert [(d["parameter"], d["direction"]) for d in listed] == [
        ("sms_needs_consent", "stricter")]
    with pytest.raises(ValidationError, match="compliance overrides for US"):
        LAW.model_validate({**LAW.model_dump(), "compliance": {
            "US": {"sms_needs_consent": "sometimes"}}})
    with pytest.raises(ValidationError, match="the change is empty"):
        PreferenceChange(actor=AGENT)
    with pytest.raises(ValidationError, match="sms_consent"):
        PreferenceChange.model_validate({"sms_consent": "maybe", "actor": AGENT})


# ------------------------------------------------------------------ the workflow
@dataclass
class Api:
    h: Harness
    http: httpx.AsyncClient
    agent: dict[str, str]

    async def consent(self, loan_id: str, action: str) -> httpx.Response:
        return await self.http.post(f"/v1/loans/{loan_id}/consents", headers=self.agent,
                                    json={"channel": "sms", "action": action,
                                          "source": "application_form"})

    async def sms(self, loan_id: str) -> list[dict[str, Any]]:
        return [r for r in await self.h.rows(t.contact_attempts, loan_id=loan_id)
                if r["channel"] == "sms"]


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    chosen = settings_for_tests()
    services = Services(client=harness.client, ledger=harness.ledger,
                        keys=KeyStore(harness.ledger.engine), settings=chosen)
    _, key = await services.keys.create("agent-1", "agent")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(
            app=create_app(chosen, services)), base_url="http://api") as http:
        yield Api(harness, http, {"Authorization": f"Bearer {key}"})


async def test_no_sms_until_consent_is_recorded_through_the_api_then_sms_goes(
        api: Api) -> None:
    h = api.h
    await advance_to_local(h, SHANGHAI, time(12, 0))
    loan = make_loan(await h.env.get_current_time(), dpd=2)
    await h.client.start(loan, CONSENTING)
    await h.env.sleep(timedelta(minutes=5))
    assert await api.sms(loan.loan_id) == [], "no consent, no SMS"
    decided = await h.rows(t.compliance_decisions, loan_id=loan.loan_id)
    blocked = [d for d in decided if d["step"] == "notice-sms" and d["channel"] == "sms"]
    assert [(d["verdict"], d["code"]) for d in blocked] == [("blocked", "sms_consent")]
    assert any(r["step"] == "notice-email" and r["status"] == "sent"
               for r in await h.rows(t.contact_attempts, loan_id=loan.loan_id))

    given = await api.consent(loan.loan_id, "given")
    assert given.status_code == 201, given.text
    status = await h.client.status(loan.loan_id)
    assert status.standing.sms_consent_at is not None
    await h.env.sleep(timedelta(days=4))
    sent = await api.sms(loan.loan_id)
    assert [r["step"] for r in sent] == ["reminder-sms"], sent
    assert sent[0]["status"] == "sent" and sent[0]["recipient"] == loan.borrower.phones[0]

    withdrawn = await api.consent(loan.loan_id, "withdrawn")
    assert withdrawn.status_code == 201, withdrawn.text
    await h.client.update_contact_preferences(loan.loan_id, PreferenceChange(
        opt_in=[Channel.SMS], actor=AGENT, note="opted back in, no new consent"))
    status = await h.client.status(loan.loan_id)
    assert status.standing.sms_consent_at is None and "sms" not in status.standing.opted_out
    again = await h.client.request_contact(loan.loan_id, ContactRequest(
        channel=Channel.SMS, actor=AGENT))
    assert again.verdict is Verdict.BLOCKED and again.code == "sms_consent"
    kinds = [e["kind"] for e in await h.rows(t.audit_events, loan_id=loan.loan_id)]
    assert kinds.count("sms_consent") == 1 and kinds.count("sms_consent_withdrawn") == 1
    report = await run_audit(h.ledger)  # the audit replays consent from the ledger alone
    mine = [v for v in report.violations if v.loan_id == loan.loan_id]
    assert mine == [], "the SMS sent after consent is lawful to the independent audit"


async def test_consent_given_before_a_hand_over_counts_for_the_new_loan(api: Api) -> None:
    """The consent ledger is the borrower's: a consent recorded on an earlier loan lets the
    next loan's first SMS go (the loan starts from the ledger's standing)."""
    h = api.h
    await advance_to_local(h, SHANGHAI, time(12, 0))
    first = make_loan(await h.env.get_current_time(), dpd=2)
    await h.client.start(first, CONSENTING)
    await h.settle(first.loan_id)
    assert (await api.consent(first.loan_id, "given")).status_code == 201
    b = first.borrower
    later = make_loan(await h.env.get_current_time(), dpd=2, borrower_id=b.borrower_id,
                      phones=list(b.phones))
    await h.client.start(later, CONSENTING)
    await h.env.sleep(timedelta(minutes=5))
    assert (await h.client.status(later.loan_id)).standing.sms_consent_at is not None
    sent = await api.sms(later.loan_id)
    assert [(r["step"], r["status"]) for r in sent] == [("notice-sms", "sent")], sent

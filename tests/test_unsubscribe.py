"""One-click unsubscribe (RFC 8058): signed tokens, and the API's link endpoint against a
real worker on the time-skipping test server - a valid link opts the borrower out of
email in the loan's own workflow, exactly as an agent's opt-out does."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.channels.unsubscribe_tokens import TokenSigner, signer_from_settings
from duecourse.domain.actor import Actor, ActorKind
from duecourse.domain.policy import Channel
from duecourse.inbound.store import InboundStore
from duecourse.settings import Settings
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from tests.conftest import Harness
from tests.factories import daytime_zone, make_loan
from tests.test_workflow_negotiation import STANDARD

SECRET = SecretStr("unsubscribe-test-secret")


def settings(**kwargs: object) -> Settings:
    return Settings(lender_name="Acme Lending", lender_contact="400-800-1234",
                    inbound_secret=SECRET, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ tokens
def test_a_token_binds_its_loan_and_channel_and_names_no_one() -> None:
    signer = signer_from_settings(settings())
    assert signer is not None
    token = signer.mint("L-42")
    found = signer.verify(token)
    assert found is not None and (found.loan_id, found.channel) == ("L-42", "email")
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert payload == {"c": "email", "k": "inbound", "l": "L-42"}, "nothing but the binding"


def test_a_tampered_forged_or_malformed_token_is_refused() -> None:
    signer = signer_from_settings(settings())
    assert signer is not None
    token = signer.mint("L-42")
    encoded, signature = token.split(".")
    other = base64.urlsafe_b64encode(
        b'{"c":"email","k":"inbound","l":"L-43"}').rstrip(b"=").decode()
    forged = TokenSigner({"inbound": b"another secret"}, "inbound").mint("L-42")
    for bad in (f"{other}.{signature}", forged, encoded, f"{token}x", f"{encoded}..{signature}",
                "", "a.b", "!!!.???", "x" * 600,
                signer.mint("L-42").replace(signature[:4], "AAAA")):
        assert signer.verify(bad) is None, bad


def test_payload_keys_sign_when_no_inbound_secret_and_old_keys_still_verify(
        tmp_path: Path) -> None:
    old = "k1:" + base64.b64encode(b"1" * 32).decode()
    new = "k2:" + base64.b64encode(b"2" * 32).decode()
    before = signer_from_settings(Settings(payload_keys=SecretStr(old), data_dir=tmp_path))
    after = signer_from_settings(Settings(payload_keys=SecretStr(f"{old},{new}"),
                                          data_dir=tmp_path))
    assert before is not None and after is not None
    issued = before.mint("L-7")
    assert after.verify(issued) is not None, "a rotation keeps links already sent working"
    assert '"k":"p-k2"' in base64.urlsafe_b64decode(after.mint("L-7").split(".")[0] + "==").decode()
    assert signer_from_settings(Settings(payload_keys=None, payload_key_file=None,
                                         data_dir=tmp_path)) is None


# ------------------------------------------------------------------ the endpoint
@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    cfg = settings()
    services = Services(client=harness.client, ledger=harness.ledger,
                        keys=KeyStore(harness.ledger.engine), settings=cfg)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(cfg, services)),
                                 base_url="http://api") as http:
        yield http


async def test_one_click_opts_the_borrower_out_of_email(harness: Harness,
                                                        api: httpx.AsyncClient) -> None:
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=2,
                     tz=daytime_zone(await h.env.get_current_time()))
    await h.client.start(loan, STANDARD)
    await h.settle(loan.loan_id)
    signer = signer_from_settings(settings())
    assert signer is not None
    path = f"/v1/unsubscribe/{signer.mint(loan.loan_id)}"

    page = await api.get(path)
    assert page.status_code == 200 and "<form method=\"post\">" in page.text
    assert loan.loan_id not in page.text and "1,000" not in page.text, "no debt details"
    assert Channel.EMAIL not in (await h.client.status(loan.loan_id)).standing.opted_out, \
        "a GET (a link scanner) changes nothing"

    done = await api.post(path, content="List-Unsubscribe=One-Click",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200, done.text
    assert "will not receive further email" in done.text and loan.loan_id not in done.text
    await h.settle(loan.loan_id)
    status = await h.client.status(loan.loan_id)
    assert Channel.EMAIL in status.standing.opted_out
    assert Channel.SMS not in status.standing.opted_out, "only the link's channel"
    [opted] = [e for e in await h.rows(t.audit_events, loan_id=loan.loan_id)
               if e["kind"] == "opted_out"]
    assert (opted["actor_kind"], opted["actor_id"]) == ("borrower", "unsubscribe-link")
    again = await api.post(path, content="List-Unsubscribe=One-Click")
    assert again.status_code == 200, "a repeated click is confirmed, not an error"


async def test_an_invalid_link_is_a_neutral_404_and_touches_nothing(
        harness: Harness, api: httpx.AsyncClient) -> None:
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=2,
                     tz=daytime_zone(await h.env.get_current_time()))
    await h.client.start(loan, STANDARD)
    await h.settle(loan.loan_id)
    forged = TokenSigner({"inbound": b"guessed"}, "inbound").mint(loan.loan_id)
    refused = await api.post(f"/v1/unsubscribe/{forged}",
                             content="List-Unsubscribe=One-Click")
    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"] == "this unsubscribe link is not valid"
    shown = await api.get(f"/v1/unsubscribe/{forged}")
    assert shown.status_code == 404 and "form" not in shown.text
    signer = signer_from_settings(settings())
    assert signer is not None
    unknown = await api.post(f"/v1/unsubscribe/{signer.mint('L-no-such-loan')}")
    assert unknown.status_code == 404 and "L-no-such-loan" not in unknown.text
    await h.settle(loan.loan_id)
    assert not (await h.client.status(loan.loan_id)).standing.opted_out


async def test_the_link_withdraws_email_consent_in_the_ledger_once(
        harness: Harness, api: httpx.AsyncClient) -> None:
    h = harness
    loan = make_loan(await h.env.get_current_time(), dpd=2,
                     tz=daytime_zone(await h.env.get_current_time()))
    await h.client.start(loan, STANDARD)
    await h.settle(loan.loan_id)
    signer = signer_from_settings(settings())
    assert signer is not None
    path = f"/v1/unsubscribe/{signer.mint(loan.loan_id)}"
    clicks = await asyncio.gather(*(api.post(path, content="List-Unsubscribe=One-Click")
                                    for _ in range(2)))  # a mail client and its user
    assert [c.status_code for c in clicks] == [200, 200]
    assert (await api.post(path)).status_code == 200  # and once more, later

    def ledger(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
        return [(r["channel"], r["action"], r["source"], r["loan_id"]) for r in rows]

    borrower = loan.borrower.borrower_id
    assert ledger(await h.rows(t.consents, borrower_id=borrower)) == [
        ("email", "withdrawn", "unsubscribe_link", loan.loan_id)], "one row for three clicks"
    [row] = await h.rows(t.consents, borrower_id=borrower)
    assert (row["actor_kind"], row["actor_id"]) == ("borrower", "unsubscribe-link")
    store = InboundStore(h.ledger.engine)
    await store.record_consent(borrower, loan.loan_id, "email", "given", "borrower_web_form",
                               Actor(kind=ActorKind.BORROWER, id=borrower))
    await api.post(path)  # consented again, then unsubscribed again: a new withdrawal
    assert [r[1] for r in ledger(await h.rows(t.consents, borrower_id=borrower))] == [
        "withdrawn", "given", "withdrawn"]
    assert await store.consent(borrower, "email") == "withdrawn"

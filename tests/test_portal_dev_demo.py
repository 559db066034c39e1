"""Issue 15's "done when", as a person does it: `duecourse dev --demo` runs (a subprocess on
free ports with its own data dir, as tests/test_starter_cli_devserver.py runs it); an
operator makes an API key with the CLI (`duecourse keys create`, which finds the dev's
ledger through <data dir>/env) and reads a demo borrower's sent message through the REST
API (`GET /v1/messages`); the borrower opens the `/b/<token>` link in it in headless
Chromium and agrees an instalment plan by clicking - and the loan's status through the API
shows the plan at once, no waiting; another demo borrower pays in full through the
sandbox's checkout page, and the API shows the loan PAID right after the checkout sends
the browser back, to the thank-you page.

The loans are the demo's own (duecourse/demo/script.py): DEMO-GB-3001's story only waits
for a legal referral to approve (minutes away) and DEMO-CN-1003's agent records a promise
and waits for it to break (90 s after it) - neither pays or closes by itself meanwhile. The
demo policy has no contact hours, so their first messages go out at once at any hour.
How long the loan took to react is printed (`-s` shows it), never asserted."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from duecourse.temporal.devserver import free_port
from tests.support.processes import interrupt
from tests.test_portal_browser import PLAN_CHOICES, _navigated, click, text
from tests.test_report_html import Page, chromium
from tests.test_screenshots import CHROMIUM

pytestmark = [pytest.mark.devserver, pytest.mark.skipif(CHROMIUM is None, reason=(
    "no chromium on PATH: install Debian's chromium package "
    "(`apt-get install --no-install-recommends chromium`; .ci/run does)"))]

PLANNER = "DEMO-GB-3001"  # no answer, legal referral: nobody scripted pays it
PAYER = "DEMO-CN-1003"  # promises broken: the agent's promise is judged 90 s on


async def _until(check: Callable[[], Awaitable[Any]], seconds: float, what: str) -> Any:
    """`check`'s first truthy answer (the dev starting up and its first sends are
    asynchronous; the loan's reaction to the page is not, and is never waited for)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.5)
    pytest.fail(f"timed out after {seconds:.0f}s waiting for {what}")


async def _operator_key(env: dict[str, str], data: Path) -> str:
    """An ops key made as the banner says (`duecourse keys create ... --role ops`)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", "keys", "create", "--name", "demo-watcher",
        "--role", "ops", env={**env, "DUECOURSE_DATA_DIR": str(data)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    assert proc.returncode == 0, out
    found = re.search(r"\bdc_[0-9a-f]+_[A-Za-z0-9_\-]+", out)
    assert found, out
    return found.group(0)


async def _sent_link(api: httpx.AsyncClient, base: str, loan_id: str) -> str | None:
    """The page link in the newest message sent to the loan's borrower, as the operator
    reads it through the API."""
    answer = await api.get("/v1/messages", params={"loan_id": loan_id})
    if answer.status_code != 200:
        return None
    link = re.compile(re.escape(base) + r"/b/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
    for m in answer.json()["messages"]:
        sent = m["status"] == "sent" and m["recipient_kind"] == "debtor"
        if sent and (found := link.findall(m["body"] or "")):
            return str(found[-1])
    return None


async def _loan(api: httpx.AsyncClient, loan_id: str) -> dict[str, Any]:
    answer = await api.get(f"/v1/loans/{loan_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def _agree_a_plan(page: Page, api: httpx.AsyncClient, link: str) -> None:
    await page.open(link)
    choices = await page.js(PLAN_CHOICES)
    assert len(choices) >= 2, f"the demo's page offers a choice of plans: {choices}"
    count = next(v for v, checked in reversed(choices) if not checked)
    await click(page, f'form[action$="/plan"] input[value="{count}"]')
    started = time.monotonic()
    await _navigated(page, click(page, 'form[action$="/plan"] button[type=submit]'))
    status = await _loan(api, PLANNER)  # at once: no sleeping, no polling
    reacted = time.monotonic() - started
    assert (await page.js("location.href")) == f"{link}?done=done_plan"
    plan = status["plan"]
    assert plan is not None, f"the API shows no plan right after the page came back: {status}"
    assert len(plan["instalments"]) == int(count)
    assert (plan["actor"]["kind"], plan["actor"]["id"]) == ("borrower", "portal")
    print(f"\n{PLANNER}: plan of {count} shown by the API {reacted:.3f}s after the click")
    assert "Thank you. Your instalment plan is agreed." in await text(page)


async def _pay_in_full(page: Page, api: httpx.AsyncClient, link: str, base: str) -> None:
    await page.open(link)
    outstanding = (await _loan(api, PAYER))["outstanding"]
    offered = await page.js("document.getElementById('pay-amount').value")
    assert offered == outstanding["amount"], (offered, outstanding)
    await _navigated(page, click(page, 'form[action$="/pay"] button[type=submit]'))
    assert (await page.js("location.href")).startswith(f"{base}/sandbox-pay/sbx_")
    checkout = await text(page)
    assert "Sandbox payment provider: no real money moves." in checkout
    assert f"{offered} {outstanding['currency']}" in checkout, checkout
    started = time.monotonic()
    await _navigated(page, click(page, 'form[action$="/paid"] button[type=submit]'))
    status = await _loan(api, PAYER)  # right after the redirect
    reacted = time.monotonic() - started
    assert status["outcome"] == "PAID", status
    assert status["outstanding"]["amount"] in ("0", "0.00"), status
    print(f"{PAYER}: PAID shown by the API {reacted:.3f}s after the sandbox's pay button")
    assert (await page.js("location.href")) == f"{link}?done=done_pay"
    landed = await text(page)
    assert "Thank you. If you made a payment" in landed, landed
    for secret in (offered, outstanding["currency"], PAYER, "Zhang Min"):
        assert secret not in landed, secret


async def test_in_the_demo_a_borrower_agrees_a_plan_and_another_pays_from_their_links(
        tmp_path: Path) -> None:
    port, ui_port, api_port = free_port(), free_port(), free_port()
    data, base = tmp_path / "data", f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUECOURSE_", "TEMPORAL_"))}
    env.update(COLUMNS="200", NO_COLOR="1")
    out = tmp_path / "dev.out"
    log = out.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", "dev", "--demo", "--port", str(port),
        "--ui-port", str(ui_port), "--api-port", str(api_port), "--metrics-port", "0",
        "--data-dir", str(data), env=env, cwd=tmp_path, stdout=log,
        stderr=asyncio.subprocess.STDOUT)
    try:
        async def written() -> bool:
            assert proc.returncode is None, out.read_text()
            return (data / "env").is_file()

        await _until(written, 60, "`duecourse dev` to write its env file")
        key = await _operator_key(env, data)
        async with httpx.AsyncClient(base_url=base, timeout=30,
                                     headers={"Authorization": f"Bearer {key}"}) as api:
            links = {}
            for loan_id in (PLANNER, PAYER):
                links[loan_id] = await _until(lambda i=loan_id: _sent_link(api, base, i), 60,
                                              f"a message to {loan_id}'s borrower with a link")
            async with chromium(tmp_path) as page:
                await _agree_a_plan(page, api, links[PLANNER])
                await _pay_in_full(page, api, links[PAYER], base)
    finally:
        try:
            code = await interrupt(proc, 30)
        finally:
            log.close()
            print(out.read_text())  # shown when the test fails
    output = out.read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
    # a page link is a bearer credential: the access log shows its path, never its token
    assert '"GET /b/<redacted> HTTP/1.1" 200' in output
    for link in links.values():
        assert link.rsplit("/b/", 1)[1] not in output, "a page token reached the log"

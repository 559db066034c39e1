"""The borrower's page in a real browser: Debian's headless `chromium`, driven over the
DevTools protocol (tests/test_report_html.py's `chromium`), against the real app served by
uvicorn on a free port, with a real worker on the time-skipping server.

A borrower opens the link exactly as a sent message carries it (the outbox body), clicks a
plan and its button with the mouse, and the loan's status shows the plan the moment the
page comes back; pays part and then the rest through the embedded sandbox provider's
checkout page, and the loan closes as PAID; a tampered link draws the same neutral page as
an unknown one, with no balance, lender or name on it; the page speaks Chinese to a zh-CN
borrower, draws (a screenshot that is not blank), fits a phone and works from the keyboard
alone. The README's screenshot of the page comes from here too
(`test_the_readme_screenshot`; docs/screenshots/portal.py redraws it). Without a chromium
on PATH these tests skip, as tests/test_screenshots.py's do."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import uvicorn
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duecourse.activities import build_activities
from duecourse.activities.messaging import MessagingActivities
from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.channels.routing import channels_from_settings
from duecourse.domain.loan import LoanIntake
from duecourse.portal.links import PortalLinks
from duecourse.runtime import build_worker
from duecourse.settings import Settings
from duecourse.store import Ledger
from duecourse.store import tables as t
from duecourse.store.keys import KeyStore
from duecourse.temporal.devserver import free_port
from tests.conftest import Harness, TrackingClient
from tests.factories import daytime_zone, make_loan
from tests.test_report_html import Page, chromium
from tests.test_screenshots import CHROMIUM, HEIGHT, WIDTH, read_png, share
from tests.test_workflow_negotiation import STANDARD

SECRET = "portal-browser-test-secret-0123456789"
PHONE = (390, 844)
README_SHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "portal-page.png"
README_SHOT_ENV = "DUECOURSE_README_SCREENSHOT"
"""Set (to anything) to write README_SHOT from test_the_readme_screenshot:
docs/screenshots/portal.py does."""
README_MAX_BYTES = 300_000

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=(
    "no chromium on PATH: install Debian's chromium package "
    "(`apt-get install --no-install-recommends chromium`; .ci/run does) to drive the "
    "borrower's page in a browser"))


# --------------------------------------------------------------------------- the site
@dataclass
class Site:
    h: Harness
    url: str

    async def hand_over(self, **kwargs: Any) -> tuple[LoanIntake, str]:
        """Start a loan (borrower in office hours), let its first messages go out, and
        return it with the link, as written, in the last message it was sent."""
        now = await self.h.env.get_current_time()
        loan = make_loan(now, dpd=2, tz=daytime_zone(now), **kwargs)
        await self.h.client.start(loan, STANDARD)
        await self.h.env.sleep(timedelta(minutes=5))
        await self.h.settle(loan.loan_id)
        sent = {a["idempotency_key"] for a in await self.h.rows(
            t.contact_attempts, loan_id=loan.loan_id) if a["status"] == "sent"}
        pattern = re.compile(re.escape(self.url) + r"/b/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
        links = [link for m in await self.h.rows(t.outbox_messages)
                 if m["idempotency_key"] in sent for link in pattern.findall(m["body"])]
        assert links, "the loan's messages went to the outbox, each with its link"
        return loan, links[-1]


async def _serve(env: WorkflowEnvironment, ledger: Ledger, **extra: Any
                 ) -> AsyncIterator[Site]:
    """The app on uvicorn (a real socket the browser opens) with the portal's links
    pointing at it, and a worker whose sends write those links into the outbox."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = Settings(lender_name="Acme Lending", lender_contact="400-800-1234",
                   webhook_allow_private=True, portal_secret=SecretStr(SECRET),
                   public_url=url, **extra)
    queue = f"tq-{uuid4().hex}"
    client = TrackingClient(env, queue)
    router = channels_from_settings(cfg, ledger)
    messaging = MessagingActivities(ledger, router, cfg.lender_name, cfg.lender_contact,
                                    portal=PortalLinks.from_settings(cfg))
    acts = [a for a in build_activities(ledger, router, cfg.lender_name, cfg.lender_contact)
            if getattr(a, "__name__", "") not in ("send_message", "settle_send")]
    acts += [messaging.send_message, messaging.settle_send]
    app = create_app(cfg, Services(client=client, ledger=ledger,
                                   keys=KeyStore(ledger.engine), settings=cfg))
    api = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                        lifespan="on"))
    async with build_worker(env.client, ledger, cfg, queue, activities=acts):
        serving = asyncio.create_task(api.serve())
        try:
            deadline = time.monotonic() + 15
            while not api.started:
                assert not serving.done(), "uvicorn stopped before it was serving"
                assert time.monotonic() < deadline, "uvicorn did not start within 15 s"
                await asyncio.sleep(0.05)
            yield Site(Harness(env, client, ledger, queue), url)
        finally:
            api.should_exit = True
            await serving
            await client.end_all()


@pytest.fixture
async def site(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Site]:
    async for s in _serve(ts_env, ledger):
        yield s


@pytest.fixture
async def paying(ts_env: WorkflowEnvironment, ledger: Ledger,
                 tmp_path: Path) -> AsyncIterator[Site]:
    """The same, taking payments through the embedded sandbox provider."""
    async for s in _serve(ts_env, ledger, payment_provider="sandbox",
                          data_dir=tmp_path / "data"):
        yield s


# --------------------------------------------------------------------------- the browser
async def _navigated(page: Page, act: Awaitable[Any]) -> None:
    """Do `act` (a coroutine that makes the page navigate) and wait for the new page."""
    while not page.loads.empty():
        page.loads.get_nowait()
    await act
    await asyncio.wait_for(page.loads.get(), 30)


async def _centre(page: Page, selector: str) -> tuple[float, float]:
    """Scroll `selector` into view and return its centre in the window, as a finger (or
    a mouse) would find it."""
    box = await page.js(f"""(() => {{
        const e = document.querySelector({json.dumps(selector)});
        if (!e) return null;
        e.scrollIntoView({{block: 'center'}});
        const r = e.getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
    assert box is not None, f"nothing on the page matches {selector}"
    return box[0], box[1]


async def click(page: Page, selector: str) -> None:
    """A real left click (press and release) on what `selector` names."""
    x, y = await _centre(page, selector)
    for kind in ("mousePressed", "mouseReleased"):
        await page.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                        clickCount=1)


KEYS = {"Tab": 9, "Enter": 13, "ArrowDown": 40}


async def press(page: Page, key: str) -> None:
    """A key pressed and released, as a keyboard sends it."""
    code = KEYS[key]
    down: dict[str, Any] = {"key": key, "code": key, "windowsVirtualKeyCode": code}
    if key == "Enter":
        down["text"] = "\r"
    await page.send("Input.dispatchKeyEvent", type="keyDown", **down)
    await page.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=key,
                    windowsVirtualKeyCode=code)


async def text(page: Page) -> str:
    """What the reader sees: the page's rendered text, whitespace folded."""
    return " ".join((await page.js("document.body.innerText")).split())


MIN_COLOURS, MIN_INK = 64, 0.01
"""The page is a 40rem column of text on white: drawn, it has anti-aliased text in
hundreds of shades over a few percent of a desktop window (~2.5% here); blank, one
colour and no ink."""


def assert_drawn_page(png: Path, size: tuple[int, int]) -> None:
    picture = read_png(png)
    assert (picture.width, picture.height) == size, (picture, png)
    assert picture.colours >= MIN_COLOURS and picture.ink >= MIN_INK, (
        f"the page looks blank: {picture} ({png})")


PLAN_CHOICES = ("Array.from(document.querySelectorAll('form[action$=\"/plan\"] "
                "input[name=option]')).map(e => [e.value, e.checked])")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _tampered(link: str) -> list[str]:
    """The link with one character of its body changed, and with its body rewritten to
    live a year longer under the original signature (valid JSON for the real loan and
    case: only the signature tells it from the genuine link)."""
    head, signature = link.rsplit(".", 1)
    base, encoded = head.rsplit("/", 1)
    fields = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert isinstance(fields.get("e"), int), f"the link's body changed shape: {fields}"
    longer = _b64(json.dumps({**fields, "e": fields["e"] + 365 * 86400},
                             separators=(",", ":")).encode())
    return [f"{head[:-1]}{'A' if head[-1] != 'A' else 'B'}.{signature}",
            f"{base}/{longer}.{signature}"]


# --------------------------------------------------------------------------- tests
async def test_a_borrower_opens_the_link_from_a_message_and_clicks_a_plan(
        site: Site, tmp_path: Path) -> None:
    loan, link = await site.hand_over(currency="USD", jurisdiction="US", language="en")
    async with chromium(tmp_path) as page:
        await page.open(link)
        assert await page.js("document.documentElement.lang") == "en"
        seen = await text(page)
        assert "Amount outstanding" in seen and "$1,000.00" in seen, seen
        choices = await page.js(PLAN_CHOICES)
        assert len(choices) >= 2, f"the page offers a choice of plans: {choices}"
        count = next(v for v, checked in reversed(choices) if not checked)
        await click(page, f'form[action$="/plan"] input[value="{count}"]')
        assert dict(await page.js(PLAN_CHOICES))[count], "the click chose that plan"

        started = time.monotonic()
        await _navigated(page, click(page, 'form[action$="/plan"] button[type=submit]'))
        assert (await page.js("location.href")).endswith("?done=done_plan")
        plan = (await site.h.client.status(loan.loan_id)).plan  # no waiting for the worker
        reacted = time.monotonic() - started
        assert plan is not None, "the loan shows the plan as soon as the page is back"
        assert len(plan.instalments) == int(count)
        assert sum(i.amount for i in plan.instalments) == 1000
        assert (plan.actor.kind, plan.actor.id) == ("borrower", "portal")
        assert reacted < 5, f"the loan took {reacted:.1f}s to show the plan"
        after = await text(page)
        assert "Thank you. Your instalment plan is agreed." in after
        assert "Your instalment plan is running." in after
        assert not await page.js(PLAN_CHOICES), "no second plan is offered"


async def test_a_tampered_link_shows_the_neutral_page_and_nothing_else(
        site: Site, tmp_path: Path) -> None:
    loan, link = await site.hand_over(currency="USD", jurisdiction="US", language="en",
                                      name="Sam Lee")
    async with chromium(tmp_path) as page:
        await page.open(link)
        genuine = await text(page)
        assert "$1,000.00" in genuine and "Acme Lending" in genuine, "the real link works"
        await page.open(f"{site.url}/b/no-such-link")
        unknown = (await text(page), await page.js("document.title"))
        assert "This link is not valid." in unknown[0]
        for tampered in _tampered(link):
            await page.open(tampered)
            shown = (await text(page), await page.js("document.title"))
            assert shown == unknown, f"{tampered} looks other than an unknown link"
            for secret in ("1,000", "$", "USD", "Acme Lending", "Sam Lee",
                           "Amount outstanding", loan.loan_id, loan.borrower.borrower_id):
                assert secret not in shown[0] + shown[1], secret
            assert await page.js("document.forms.length") == 0, "nothing to act on"

        agent = (await page.send("Browser.getVersion"))["userAgent"]
        await page.send("Emulation.setUserAgentOverride", userAgent=agent,
                        acceptLanguage="zh-CN,zh;q=0.9")
        await page.open(_tampered(link)[-1])
        assert await page.js("document.documentElement.lang") == "zh-CN"
        assert "此链接无效" in await text(page), "in the reader's own language"


async def test_the_page_in_chinese_draws_fits_a_phone_and_works_by_keyboard(
        site: Site, tmp_path: Path) -> None:
    loan, link = await site.hand_over()  # the factory's borrower: zh-CN, CNY
    async with chromium(tmp_path) as page:
        await page.open(link)
        assert await page.js("document.documentElement.lang") == "zh-CN"
        seen = await text(page)
        for label in ("您的账户", "待还金额", "¥1,000.00", "承诺还款", "分期还款",
                      "选择此方案", "这不是我的债务"):
            assert label in seen, label
        assert "Amount outstanding" not in seen
        shot = await page.look("portal-zh-CN", tmp_path)
        assert_drawn_page(shot.png, (WIDTH, HEIGHT))

        await page.size(*PHONE, mobile=True)
        await page.open(link)
        width = await page.js("document.documentElement.scrollWidth")
        assert width <= PHONE[0], f"the page is {width}px wide on a {PHONE[0]}px phone"

        choices = await page.js(PLAN_CHOICES)
        assert len(choices) >= 2 and choices[0][1], choices
        await page.js("document.querySelector('form[action$=\"/plan\"] "
                      "input[name=option]:checked').focus()")
        await press(page, "ArrowDown")  # the next plan, chosen from the keyboard
        chosen = [v for v, checked in await page.js(PLAN_CHOICES) if checked]
        assert chosen == [choices[1][0]], chosen
        await press(page, "Tab")
        assert await page.js("document.activeElement.textContent") == "选择此方案", \
            "Tab goes from the plans to their button"
        await _navigated(page, press(page, "Enter"))
        assert "谢谢。您的分期计划已确认。" in await text(page)
        plan = (await site.h.client.status(loan.loan_id)).plan
        assert plan is not None and len(plan.instalments) == int(chosen[0])


async def test_the_readme_screenshot(paying: Site, tmp_path: Path) -> None:
    """The page as an English borrower's phone first shows it (390x844 CSS px, 2x
    pixels), payments on, as the README shows it. With DUECOURSE_README_SCREENSHOT set, it replaces
    docs/screenshots/portal-page.png (docs/screenshots/portal.py sets it)."""
    _, link = await paying.hand_over(currency="USD", jurisdiction="US", language="en")
    async with chromium(tmp_path) as page:
        await page.send("Emulation.setDeviceMetricsOverride", width=PHONE[0],
                        height=PHONE[1], deviceScaleFactor=2, mobile=True)
        await page.open(link)
        seen = await text(page)
        assert "$1,000.00" in seen and "Pay now" in seen and "Choose this plan" in seen
        png = await page.screenshot(tmp_path / "portal-page.png")
        share(png)
    assert_drawn_page(png, (PHONE[0] * 2, PHONE[1] * 2))
    assert png.stat().st_size < README_MAX_BYTES, f"{png.stat().st_size} bytes: too big"
    if os.environ.get(README_SHOT_ENV):
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, README_SHOT)


async def _pay(page: Page, site: Site, amount: str | None = None) -> None:
    """From the borrower's page, pay `amount` (None: the amount the form offers) through
    the sandbox's checkout page, clicking as a borrower does, back to the page."""
    if amount is not None:
        await click(page, "#pay-amount")
        await page.js("document.getElementById('pay-amount').select()")
        await page.send("Input.insertText", text=amount)  # typed over the default
    await _navigated(page, click(page, 'form[action$="/pay"] button[type=submit]'))
    assert (await page.js("location.href")).startswith(f"{site.url}/sandbox-pay/sbx_")
    checkout = await text(page)
    assert "Sandbox payment provider: no real money moves." in checkout
    assert f"{amount or '1000.00'} USD" in checkout, checkout
    await _navigated(page, click(page, 'form[action$="/paid"] button[type=submit]'))


async def test_a_borrower_pays_part_then_the_rest_and_the_loan_closes_paid(
        paying: Site, tmp_path: Path) -> None:
    loan, link = await paying.hand_over(currency="USD", jurisdiction="US", language="en")
    async with chromium(tmp_path) as page:
        await page.open(link)
        await _pay(page, paying, "400.00")
        assert await page.js("location.href") == f"{link}?done=done_pay", "back on the page"
        status = await paying.h.client.status(loan.loan_id)  # no waiting for the worker
        assert status.outstanding.amount == 600 and status.outcome is None
        back = await text(page)
        assert "Welcome back." in back and "$600.00" in back, back
        assert await page.js("document.getElementById('pay-amount').value") == "600.00"

        started = time.monotonic()
        await _pay(page, paying, "600.00")
        result = await paying.h.client.result(loan.loan_id)
        assert (result.outcome, result.total_paid.amount) == ("PAID", 1000)
        reacted = time.monotonic() - started
        assert reacted < 5, f"the loan took {reacted:.1f}s to close after the payment"
        assert await page.js("location.href") == f"{link}?done=done_pay", "back at the link"
        landed = await text(page)  # the case closed, so the link no longer opens: thanks
        assert "Thank you. If you made a payment" in landed, landed
        for secret in ("$", "USD", "Acme Lending", loan.loan_id, "Amount outstanding"):
            assert secret not in landed, secret
    paid = await paying.h.rows(t.payments, loan_id=loan.loan_id)
    assert sorted(p["amount"] for p in paid) == [400, 600]
    assert all(p["reference"].startswith("sandbox:sbx_") for p in paid), paid
    assert {r["status"] for r in await paying.h.rows(t.provider_payments,
                                                      loan_id=loan.loan_id)} == {"paid"}

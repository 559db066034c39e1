"""The HTML report and the /ops page, looked at in headless Chromium.

The report is rendered from figures built here (two strategies, a challenger against a
champion), written to a file and checked to load nothing from outside; then Debian's
`chromium` opens it, screenshots it (kept in the tmp dir, and in DUECOURSE_SCREENSHOT_DIR
when set) and, through the DevTools protocol, proves each chart drew: a laid-out <svg>
with its series' shapes of real size, and pixels of more than one colour where it sits.

The /ops page is served by the real app (uvicorn on a free port) over a real SQLite ledger
holding a few cases written through the Ledger's own methods, with real API keys. Without
a live ops or supervisor key it shows the key form and no figure; a browser signs in
through that form (the key in a POST, kept in an HttpOnly cookie, never in the URL) and
the page then draws the live funnel and recovery, the KPIs and what needs attention.

Without a chromium on PATH the browser tests skip, as tests/test_screenshots.py does."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from temporalio.testing import WorkflowEnvironment

from duecourse.api import create_app
from duecourse.api.routes.ops_page import COOKIE
from duecourse.api.services import Services
from duecourse.domain.actor import SYSTEM
from duecourse.domain.entries import PaymentRecorded, StageChanged, TaskRecorded
from duecourse.domain.work.queue import Task, TaskKind
from duecourse.lab.figures import (
    Attention,
    Comparison,
    Complaints,
    Compliance,
    Costs,
    CurvePoint,
    Difference,
    GroupFigures,
    PortfolioFigures,
    Rate,
    Recovery,
    StageCount,
)
from duecourse.lab.report_html import render_report
from duecourse.store import Ledger, connect, migrate
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.contracts import OpenLoan, OpsAlert, RecordEntries
from duecourse.temporal.devserver import free_port
from tests.conftest import TEST_SERVER, settings_for_tests
from tests.factories import make_loan
from tests.support.sealing import sealed
from tests.test_screenshots import CHROMIUM, HEIGHT, WIDTH, Look, assert_drawn, read_png, share

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=(
    "no chromium on PATH: install Debian's chromium package "
    "(`apt-get install --no-install-recommends chromium`; .ci/run does) to look at the "
    "report and the /ops page"))
REPORT_CHARTS = {"recovery-curves": 2, "funnel": 4, "contacts-per-cure": 2, "cure-by-bucket": 4,
                 "roll-rates-champion": 6, "roll-rates-challenger": 6}
"""Each chart of the report and the data shapes it draws: a line per strategy, a bar per
stage, per strategy, per strategy and bucket, per bucket and where it rolled."""
VERDICT = ("challenger against champion: recovers 4.1 percentage points more of the amount "
           "handed over (45.0% against 40.9%, 95% CI 1.2 to 7.0 points), with 18% fewer "
           "contacts per loan (3.3 against 4.0); cures 2.0 points higher (47.0% against "
           "45.0%, 95% CI -1.0 to 5.0 points, not significant).")
MIN_CHART_COLOURS, MIN_CHART_INK = 16, 0.03
"""A drawn chart here has lines or bars in several colours over ~10-40% of its box; an
empty one is a white box with a few grey words."""


# --------------------------------------------------------------------------- figures
def rate(part: int, whole: int) -> Rate:
    return Rate(part=part, whole=whole, value=part / whole if whole else None)


def group(key: str, cure: float, recovered: float, contacts: int) -> GroupFigures:
    cases, cured = 200, round(200 * cure)
    early = round(120 * cure)
    return GroupFigures(
        key=key, loans=cases, cases=cases, closed=cured + 10,
        outcomes={"PAID": cured - 5, "SETTLED": 5, "WRITTEN_OFF": 10},
        roll_rates={"1-30": {"cured": rate(early, 120), "31-60": rate(116 - early, 120),
                             "closed": rate(4, 120)},
                    "31-60": {"cured": rate(20, 80), "61-90": rate(56, 80),
                              "closed": rate(4, 80)}},
        cure_rate_by_bucket={"1-30": rate(early, 120), "31-60": rate(20, 80)},
        cure_rate=rate(cured, cases),
        recovery=[Recovery(currency="CNY", handed_over=Decimal("200000.00"),
                           recovered=Decimal(200000 * recovered).quantize(Decimal("0.01")),
                           rate=recovered,
                           curve=[CurvePoint(day=d, recovered=recovered * min(1, d / 60))
                                  for d in range(0, 91)])],
        promise_kept_rate=rate(30, 50), plan_completion_rate=rate(8, 12),
        right_party_contact_rate=rate(150, contacts),
        costs=Costs(contacts=contacts, contacts_by_channel={"sms": contacts - 100, "voice": 100},
                    agent_tasks=40, cost=Decimal("1234.50"), currency="CNY",
                    contacts_per_cure=contacts / cured, cost_per_cure=Decimal("12.34"),
                    cost_per_unit_recovered=Decimal("0.021")),
        complaints=Complaints(disputes=3, opt_outs=5, cease_requests=1),
        compliance=Compliance(blocks_by_rule={"CN_HOURS": 7},
                              deferrals_by_rule={"CN_HOURS": 30}))


def two_strategies() -> PortfolioFigures:
    differences = [
        Difference(metric="recovery_rate", champion=0.409, challenger=0.45, difference=0.041,
                   relative=0.1, ci_low=0.012, ci_high=0.07, significant=True),
        Difference(metric="cure_rate", champion=0.45, challenger=0.47, difference=0.02,
                   relative=0.044, ci_low=-0.01, ci_high=0.05, significant=False),
        Difference(metric="contacts_per_loan", champion=4.0, challenger=3.3, difference=-0.7,
                   relative=-0.175, ci_low=-1.0, ci_high=-0.4, significant=True)]
    return PortfolioFigures(
        generated_at=datetime(2026, 12, 3, 10, 0, tzinfo=UTC), group_by="strategy",
        groups=[group("champion", 0.45, 0.409, 800), group("challenger", 0.47, 0.45, 660)],
        total=group("all", 0.46, 0.43, 1460),
        funnel=[StageCount(stage="REMINDER", loans=40), StageCount(stage="NEGOTIATION",
                                                                   loans=20),
                StageCount(stage="PAID", loans=150), StageCount(stage="WRITTEN_OFF", loans=20)],
        comparisons=[Comparison(champion="champion", challenger="challenger",
                                differences=differences, verdict=VERDICT)],
        attention=Attention(open_alerts=2, open_tasks=5, overdue_tasks=1))


# --------------------------------------------------------------------------- no browser
OUTSIDE = re.compile(r"""(?:\bsrc|\bhref|\baction)\s*=\s*["']?\s*(?:https?:)?//"""
                     r"""|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)


def outside_references(html: str) -> list[str]:
    """What in `html` would load from elsewhere: src/href/action to another host, CSS
    url() or @import, a <link> or an external <script>."""
    found = [m.group(0) for m in OUTSIDE.finditer(html)]
    found += re.findall(r"<link\b[^>]*>", html, re.I)
    found += re.findall(r"<script\b[^>]*\bsrc\b[^>]*>", html, re.I)
    return found


def test_the_report_is_one_self_contained_file(tmp_path: Path) -> None:
    html = render_report(two_strategies())
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert outside_references(html) == []
    assert "<script" not in html.lower(), "the charts draw without any script"
    assert "cdn" not in html.lower()
    charts = re.findall(r'<figure class="chart" data-chart="([^"]+)"', html)
    assert sorted(charts) == sorted(REPORT_CHARTS)
    assert html.count("<svg ") == len(REPORT_CHARTS)
    assert f'<p class="verdict">{VERDICT}</p>' in html
    assert "+1.2 to +7.0 pts" in html, "the recovery difference's interval is in its table"


def test_the_outside_check_finds_what_it_looks_for() -> None:
    """The self-containment check above is not vacuous."""
    for bad in ('<script src="https://cdn.example/pygal.js"></script>',
                "<img src='//example.com/x.png'>", '<a href="http://example.com">x</a>',
                "<style>@import 'x.css'</style>", '<link rel="stylesheet" href="s.css">',
                "<div style=\"background:url(https://example.com/b.png)\"></div>"):
        assert outside_references(bad), bad
    assert outside_references('<a href="#kpis">x</a><svg xmlns="http://www.w3.org/2000/svg">'
                              ) == []


def test_labels_from_the_ledger_cannot_inject_markup() -> None:
    figures = two_strategies()
    figures.groups[1].key = '<img src=x onerror="alert(1)">'
    html = render_report(figures)
    assert "<img" not in html
    assert "&lt;img src=x onerror=" in html


def test_a_report_over_nothing_says_so() -> None:
    empty = GroupFigures(key="all", loans=0, cases=0, closed=0, cure_rate=rate(0, 0),
                         promise_kept_rate=rate(0, 0), plan_completion_rate=rate(0, 0),
                         right_party_contact_rate=rate(0, 0), costs=Costs(contacts=0),
                         complaints=Complaints(), compliance=Compliance())
    html = render_report(PortfolioFigures(generated_at=datetime(2026, 12, 3, tzinfo=UTC),
                                          group_by="strategy", groups=[], total=empty))
    assert "no data yet" in html and "n/a" in html
    assert "0.0%" not in html, "a rate over nothing is not shown as 0"


# --------------------------------------------------------------------------- chromium
class Page:
    """One Chromium tab driven over the DevTools protocol: navigate, run a script in the
    page, take a screenshot of the window or of one element."""

    def __init__(self, socket: Any) -> None:
        self.socket, self.ids, self.pending = socket, 0, {}
        self.loads: asyncio.Queue[None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            if "id" in message and message["id"] in self.pending:
                self.pending.pop(message["id"]).set_result(message)
            elif message.get("method") == "Page.loadEventFired":
                self.loads.put_nowait(None)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        done = self.pending[self.ids] = asyncio.get_running_loop().create_future()
        await self.socket.send(json.dumps({"id": self.ids, "method": method,
                                           "params": params}))
        reply = await asyncio.wait_for(done, 30)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply["result"]  # type: ignore[no-any-return]

    async def _loaded(self, start: Any) -> None:
        while not self.loads.empty():
            self.loads.get_nowait()
        await start
        await asyncio.wait_for(self.loads.get(), 30)

    async def open(self, url: str) -> None:
        await self._loaded(self.send("Page.navigate", url=url))

    async def submit(self, expression: str) -> None:
        """Run `expression` (which submits a form) and wait for the page it leads to."""
        await self._loaded(self.js(expression))

    async def js(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression,
                                returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    async def size(self, width: int, height: int, mobile: bool = False) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=mobile)

    async def screenshot(self, path: Path, clip: dict[str, float] | None = None) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params.update(clip={**clip, "scale": 1}, captureBeyondViewport=True)
        shot = await self.send("Page.captureScreenshot", **params)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path

    async def look(self, name: str, tmp: Path) -> Look:
        """The window's screenshot and the DOM as drawn, as test_screenshots' `look`."""
        png = await self.screenshot(tmp / f"{name}.png")
        share(png)
        dom = await self.js("document.documentElement.outerHTML")
        (tmp / f"{name}.html").write_text(dom, encoding="utf-8")
        return Look(png, dom)


@contextlib.asynccontextmanager
async def chromium(tmp: Path) -> AsyncIterator[Page]:
    """A fresh headless Chromium (own profile, own process group) and its first tab."""
    assert CHROMIUM is not None
    profile = tmp / "chromium-profile"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-crash-reporter", "--disable-breakpad", "--no-first-run",
        "--no-default-browser-check", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
        "--remote-debugging-port=0", "--remote-allow-origins=*",
        f"--window-size={WIDTH},{HEIGHT}", "about:blank",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=(tmp / "chromium.log").open("wb"), start_new_session=True)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
        while not port_file.is_file() or len(port_file.read_text().split()) < 2:
            assert proc.returncode is None, f"chromium exited {proc.returncode}"
            assert time.monotonic() < deadline, "chromium opened no DevTools port in 30 s"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        target = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
            page = Page(ws)
            await page.send("Page.enable")
            await page.size(WIDTH, HEIGHT)
            try:
                yield page
            finally:
                page.reader.cancel()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


CHARTS_DRAWN = """
Array.from(document.querySelectorAll('figure.chart')).map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0, x: 0, y: 0};
  const shapes = svg ? Array.from(svg.querySelectorAll(
      '.series path, .series rect, .series circle')).filter(e => {
        const b = e.getBBox();  // a bar has an area; a line may be flat
        return e.tagName === 'path' ? b.width > 1 || b.height > 1
                                    : b.width > 0.5 && b.height > 0.5; }).length : 0;
  return {key: f.dataset.chart, width: box.width, height: box.height, shapes: shapes,
          x: box.x + window.scrollX, y: box.y + window.scrollY,
          empty: !svg || !!svg.querySelector('.no_data'),
          named: !!svg && svg.getAttribute('role') === 'img'
                 && (svg.getAttribute('aria-label') || '').length > 20};
})"""


async def assert_charts_drawn(page: Page, expected: dict[str, int], tmp: Path) -> None:
    """Each chart is a laid-out SVG whose series have shapes of real size (as many as it
    has data: `expected`), named for screen readers, and its screenshot has the colours
    of what it draws."""
    drawn = await page.js(CHARTS_DRAWN)
    assert {c["key"]: c["shapes"] for c in drawn} == expected, drawn
    for c in drawn:
        assert c["width"] > 250 and c["height"] > 120, f"{c['key']} has no size: {c}"
        assert not c["empty"] and c["shapes"] > 0, f"{c['key']} drew no data: {c}"
        assert c["named"], f"{c['key']} has no accessible name: {c}"
        png = await page.screenshot(tmp / f"chart-{c['key']}.png", clip={
            "x": c["x"], "y": c["y"], "width": c["width"], "height": c["height"]})
        picture = read_png(png)
        assert picture.colours >= MIN_CHART_COLOURS and picture.ink >= MIN_CHART_INK, (
            f"{c['key']} looks empty on screen: {picture} ({png})")


@needs_chromium
async def test_the_report_draws_its_charts_in_chromium(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_report(two_strategies()), encoding="utf-8")
    async with chromium(tmp_path) as page:
        await page.open(report.as_uri())
        shot = await page.look("report", tmp_path)
        assert_drawn(shot, "the HTML report")
        assert VERDICT in shot.dom
        await assert_charts_drawn(page, REPORT_CHARTS, tmp_path)
        await page.size(390, 844, mobile=True)  # a phone: laid out to its width, no wider
        await page.open(report.as_uri())
        width = await page.js("document.documentElement.scrollWidth")
        assert width <= 390, f"the report is {width}px wide on a 390px phone screen"


# --------------------------------------------------------------------------- /ops
@dataclass
class Ops:
    url: str
    keys: dict[str, str]  # role -> token
    store: KeyStore


NOW = datetime.now(UTC)


async def seed(ledger: Ledger) -> None:
    """Four cases on two policies (the strategies outside an experiment): one paid, three
    running in two stages; one open alert; two open tasks, one overdue."""
    opened = NOW - timedelta(days=20)
    cases = [("standard@1", "REMINDER", None), ("standard@1", "REMINDER", "PAID"),
             ("firm@1", "NEGOTIATION", None), ("firm@1", "REMINDER", None)]
    for n, (policy, stage, outcome) in enumerate(cases):
        loan = make_loan(opened, dpd=12)
        case_id = f"case-{n}"
        await ledger.open_case(OpenLoan(case_id=case_id, workflow_id=loan.workflow_id,
                                        loan=loan, policy=policy, opened_at=opened))
        entries: list[Any] = [StageChanged(
            key="stage:1", occurred_at=opened, actor=SYSTEM, from_stage=None,
            to_stage=stage, reason="handed over", days_past_due=12)]
        if outcome:
            paid = opened + timedelta(days=3)
            entries += [
                PaymentRecorded(key="payment:P1", occurred_at=paid, actor=SYSTEM,
                                reference=f"P-{n}", amount=loan.outstanding, currency="CNY",
                                paid_at=paid, applied=loan.outstanding, overpaid=Decimal(0),
                                outstanding_after=Decimal(0)),
                StageChanged(key="closed", occurred_at=paid, actor=SYSTEM, from_stage=stage,
                             to_stage=None, outcome=outcome, reason="paid in full",
                             days_past_due=15)]
        if n == 2:
            entries += [TaskRecorded(key=f"task:{k}", occurred_at=opened, actor=SYSTEM,
                                     task=Task(task_id=f"T{k}", kind=TaskKind.CALL_BORROWER,
                                               subject="call", assignee="agents",
                                               created_at=opened, due_at=due))
                        for k, due in ((1, NOW - timedelta(days=1)),
                                       (2, NOW + timedelta(days=2)))]
        await ledger.record_entries(RecordEntries(case_id=case_id, workflow_id=loan.workflow_id,
                                                  loan_id=loan.loan_id, entries=entries))
        if n == 3:
            await ledger.record_alert(OpsAlert(
                idempotency_key=f"{case_id}:alert:1", case_id=case_id,
                workflow_id=loan.workflow_id, loan_id=loan.loan_id,
                subject="legal approval needed", body="approve or decline", raised_at=NOW))


@pytest.fixture(scope="module")
async def ops(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ops]:
    """The API (uvicorn on a free port) over a seeded ledger, with a key of each role and
    a revoked ops key. Temporal is a real (time-skipping) server the page never calls."""
    tmp = tmp_path_factory.mktemp("ops-page")
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=sealed())
    engine = connect(f"sqlite+aiosqlite:///{tmp / 'ledger.db'}")
    await migrate(engine)
    ledger, store = Ledger(engine), KeyStore(engine)
    await seed(ledger)
    keys = {role: (await store.create(f"{role}-1", role))[1]
            for role in ("platform", "agent", "supervisor", "ops")}
    revoked, keys["revoked"] = await store.create("ops-gone", "ops")
    await store.revoke(revoked.key_id)
    settings = settings_for_tests()
    app = create_app(settings, Services(client=CollectionClient(env.client, "ops-page"),
                                        ledger=ledger, keys=store, settings=settings))
    port = free_port()
    api = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                        lifespan="on"))
    serving = asyncio.create_task(api.serve())
    try:
        deadline = time.monotonic() + 15
        while not api.started:
            assert not serving.done(), "uvicorn stopped before it was serving"
            assert time.monotonic() < deadline, "uvicorn did not start within 15 s"
            await asyncio.sleep(0.05)
        yield Ops(url=f"http://127.0.0.1:{port}", keys=keys, store=store)
    finally:
        api.should_exit = True
        await serving
        await engine.dispose()
        await env.shutdown()


def shows_no_figures(html: str) -> None:
    assert 'name="api_key"' in html, "the key form is shown"
    assert "data-kpi" not in html and "<svg" not in html and "data-chart" not in html


async def test_the_ops_page_refuses_without_a_live_overseer_key(ops: Ops) -> None:
    async with httpx.AsyncClient(base_url=ops.url, follow_redirects=False) as http:
        first = await http.get("/ops")
        assert first.status_code == 401 and first.headers["content-type"].startswith(
            "text/html")
        shows_no_figures(first.text)
        assert "no-store" in first.headers["cache-control"]
        assert "script-src" not in first.headers["content-security-policy"]  # none at all
        assert "default-src 'none'" in first.headers["content-security-policy"]

        for what, token, status, sentence in (
                ("a made-up key", "dc_nope_nope", 401, "unknown or revoked"),
                ("a revoked key", ops.keys["revoked"], 401, "unknown or revoked"),
                ("an agent key", ops.keys["agent"], 403, "agent role may not see"),
                ("a platform key", ops.keys["platform"], 403, "platform role may not see")):
            for refused in (await http.get("/ops", headers={"Cookie": f"{COOKIE}={token}"}),
                            await http.get("/ops", headers={"Authorization": f"Bearer {token}"}),
                            await http.post("/ops/session", data={"api_key": token})):
                assert refused.status_code == status, (what, refused.status_code)
                assert sentence in refused.text
                shows_no_figures(refused.text)
                assert token not in refused.text and token not in str(refused.headers), what

        foreign = await http.post("/ops/session", data={"api_key": ops.keys["ops"]},
                                  headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
        shows_no_figures(foreign.text)

        signed = await http.post("/ops/session", data={"api_key": ops.keys["ops"]})
        assert signed.status_code == 303 and signed.headers["location"] == "/ops"
        attributes = {a.strip() for a in signed.headers["set-cookie"].lower().split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/ops", "max-age=28800"} <= attributes, (
            attributes)  # the attributes only: the test's message never shows the key
        page = await http.get("/ops", headers={"Cookie": f"{COOKIE}={ops.keys['ops']}"})
        assert page.status_code == 200 and 'data-kpi="open-alerts">1<' in page.text
        assert ops.keys["ops"] not in page.text

        out = await http.post("/ops/sign-out")
        assert out.status_code == 303 and COOKIE in out.headers["set-cookie"]
        assert "max-age=0" in out.headers["set-cookie"].lower()


@needs_chromium
async def test_the_ops_page_draws_for_a_signed_in_supervisor(ops: Ops, tmp_path: Path) -> None:
    async with chromium(tmp_path) as page:
        await page.open(f"{ops.url}/ops")
        form = await page.look("ops-sign-in", tmp_path)
        shows_no_figures(form.dom)

        key = json.dumps(ops.keys["supervisor"])
        await page.submit(f"document.getElementById('api_key').value = {key};"
                          "document.querySelector('form.key').requestSubmit(); true")
        problem = await page.js("(document.getElementById('problem') || {}).textContent")
        assert problem is None, problem
        assert await page.js("location.href") == f"{ops.url}/ops", "the key is not in the URL"
        assert await page.js("document.cookie") == "", "no script can read the key"
        shot = await page.look("ops", tmp_path)
        assert 'name="api_key"' not in shot.dom, f"still the key form ({shot.png})"
        assert_drawn(shot, "the /ops page")
        kpis = await page.js("Object.fromEntries(Array.from(document.querySelectorAll("
                             "'[data-kpi]')).map(e => [e.dataset.kpi, e.textContent]))")
        assert kpis == {"open-alerts": "1", "open-tasks": "2", "overdue-tasks": "1",
                        "loans": "4", "running": "3", "cure-rate": "25.0%"}, kpis
        assert "signed in as supervisor-1 (supervisor)" in shot.dom
        for strategy in ("standard@1", "firm@1"):
            assert f'<th scope="row">{strategy}</th>' in shot.dom
        await assert_charts_drawn(page, {"funnel": 3, "recovery-curves": 2}, tmp_path)
        await page.size(390, 844, mobile=True)  # on a phone, signed in still
        await page.open(f"{ops.url}/ops")
        assert await page.js("document.querySelectorAll('[data-chart]').length") == 2
        width = await page.js("document.documentElement.scrollWidth")
        assert width <= 390, f"/ops is {width}px wide on a 390px phone screen"

        await page.submit("document.querySelector('form.out').requestSubmit(); true")
        shows_no_figures(await page.js("document.documentElement.outerHTML"))

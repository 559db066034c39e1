"""`duecourse report` (a real subprocess against a SQLite ledger file) and
`GET /v1/portfolio/analytics` (the real app over httpx) give the same numbers as
`duecourse.lab.analytics.compute` on the two-arm ledger of tests/test_analytics.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.lab.analytics import SCORECARD, compute, scorers_for
from duecourse.store import Ledger, connect, migrate
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from tests.conftest import settings_for_tests
from tests.test_analytics import COSTS, challenger, champion, write

CLI = Path(sys.executable).parent / "duecourse"
COSTS_YAML = """currency: USD
channels: {sms: "0.05", voice: "0.60", email: "0.01"}
agent_tasks: {call_borrower: "3.00"}
"""


async def _fill(url: str) -> dict[str, Any]:
    """Write the two arms into the ledger at `url`; the figures `compute` gives for it."""
    engine = connect(url)
    try:
        await migrate(engine)
        ledger = Ledger(engine)
        for n in range(10):
            await write(ledger, champion(n))
            await write(ledger, challenger(n))
        figures = await compute(engine, costs=COSTS, scorers=scorers_for(SCORECARD))
    finally:
        await engine.dispose()
    return json.loads(figures.model_dump_json(by_alias=True))


def _cli(tmp_path: Path, *args: str, costs: str = COSTS_YAML) -> subprocess.CompletedProcess[str]:
    (tmp_path / "costs.yaml").write_text(costs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUECOURSE_")}
    env.update(DUECOURSE_DATA_DIR=str(tmp_path / "data"),
               DUECOURSE_COSTS_FILE=str(tmp_path / "costs.yaml"), COLUMNS="200")
    return subprocess.run([str(CLI), "report", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120, check=False)


def _without_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "generated_at"}


def test_report_json_prints_the_figures(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sim' / 'ledger.db'}"
    expected = asyncio.run(_fill(url))
    done = _cli(tmp_path, "--ledger", url, "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert _without_time(printed) == _without_time(expected)
    # the directory `duecourse simulate --out` writes, or the file in it, reads the same
    for place in (tmp_path / "sim", tmp_path / "sim" / "ledger.db"):
        same = _cli(tmp_path, "--ledger", str(place), "--json")
        assert same.returncode == 0, same.stderr
        assert _without_time(json.loads(same.stdout)) == _without_time(expected)
    nowhere = _cli(tmp_path, "--ledger", str(tmp_path / "nowhere"), "--json")
    assert nowhere.returncode == 1 and "no ledger file there" in nowhere.stderr + \
        nowhere.stdout and "Traceback" not in nowhere.stderr
    assert printed["schema"] == "duecourse.portfolio-analytics/1"
    (comparison,) = printed["comparisons"]
    assert comparison["verdict"].startswith(
        "challenger against champion in the first 90 days after hand-over: recovers 22.5 "
        "percentage points more")
    assert printed["horizon_days"] == 90
    assert [g["key"] for g in printed["groups"]] == ["demo-ab/challenger", "demo-ab/champion"]
    by_segment = json.loads(_cli(tmp_path, "--ledger", url, "--json", "--by", "segment").stdout)
    assert {g["key"]: g["cases"] for g in by_segment["groups"]} == {
        "self_cure": 5, "cant_pay": 5, "unscored": 10}
    later = json.loads(_cli(tmp_path, "--ledger", url, "--json", "--since", "2030-01-01").stdout)
    assert later["groups"] == [] and later["total"]["cure_rate"]["value"] is None
    table = _cli(tmp_path, "--ledger", url)
    assert table.returncode == 0, table.stderr
    assert "champion" in table.stdout and "40.0%" in table.stdout
    assert "challenger against champion in the first 90 days after hand-over: recovers " \
        "22.5" in table.stdout
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    both = _cli(tmp_path, "--ledger", url, "--html", str(page), "--json")
    assert both.returncode == 0, both.stderr
    assert _without_time(json.loads(both.stdout)) == _without_time(expected)
    html = page.read_text()
    assert "<svg" in html and "recovers 22.5 percentage points more" in html


def test_report_refuses_bad_input_in_a_sentence(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    asyncio.run(_fill(url))
    wrong = _cli(tmp_path, "--ledger", url, "--by", "colour")
    assert wrong.returncode == 1
    assert "--by 'colour' is not a grouping; use one of strategy, segment, jurisdiction, " \
           "agent" in wrong.stderr and "Traceback" not in wrong.stderr
    when = _cli(tmp_path, "--ledger", url, "--since", "last tuesday")
    assert when.returncode == 1 and "--since 'last tuesday' is not a date" in when.stderr
    costs = _cli(tmp_path, "--ledger", url, costs="currency: USD\nchannels: {fax: 1}\n")
    assert costs.returncode == 1 and "channels.fax: is not a channel" in costs.stderr
    missing = _cli(tmp_path, "--ledger", f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 1 and "no ledger at" in missing.stderr
    assert not (tmp_path / "none.db").exists()


@pytest.fixture
async def api(ts_env: WorkflowEnvironment, tmp_path: Path
              ) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], dict[str, Any]]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    expected = await _fill(url)
    engine = connect(url)
    keys = KeyStore(engine)
    tokens = {role: (await keys.create(f"{role}-1", role))[1]
              for role in ("platform", "agent", "supervisor", "ops")}
    (tmp_path / "costs.yaml").write_text(COSTS_YAML)
    settings = settings_for_tests().model_copy(update={"costs_file": tmp_path / "costs.yaml"})
    services = Services(client=CollectionClient(ts_env.client, "analytics"),
                        ledger=Ledger(engine), keys=keys, settings=settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings,
                                                                              services)),
                                 base_url="http://api") as http:
        yield http, tokens, expected
    await engine.dispose()


async def test_the_api_serves_the_same_numbers_to_overseers(
        api: tuple[httpx.AsyncClient, dict[str, str], dict[str, Any]]) -> None:
    http, tokens, expected = api

    async def get(role: str, **params: str) -> httpx.Response:
        return await http.get("/v1/portfolio/analytics", params=params,
                              headers={"Authorization": f"Bearer {tokens[role]}"})

    for role in ("ops", "supervisor"):
        answer = await get(role)
        assert answer.status_code == 200, answer.text
        assert _without_time(answer.json()) == _without_time(expected)
    for role in ("agent", "platform"):
        refused = await get(role)
        assert refused.status_code == 403 and "may not do this" in refused.json()["detail"]
    grouped = (await get("ops", by="jurisdiction", since="2026-01-01")).json()
    assert grouped["group_by"] == "jurisdiction" and grouped["since"] == "2026-01-01"
    assert [(g["key"], g["cases"]) for g in grouped["groups"]] == [("US", 20)]
    bad = await get("ops", by="colour")
    assert bad.status_code == 422
    assert bad.json()["detail"] == ("the query parameter by must be 'strategy', 'segment', "
                                    "'jurisdiction' or 'agent'")

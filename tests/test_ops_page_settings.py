"""The /ops page shows the figures the lender's settings shape - its own cost table - the
same ones `GET /v1/portfolio/analytics` serves (a review finding: the page used the bundled
costs whatever DUECOURSE_COSTS_FILE said)."""

from __future__ import annotations

from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.store import Ledger, connect
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from tests.conftest import settings_for_tests
from tests.test_report_cli import _fill

EUROS = """currency: EUR
channels: {sms: "0.07", voice: "0.90", email: "0.02"}
agent_tasks: {call_borrower: "5.00"}
"""


async def test_the_ops_page_counts_costs_in_the_lenders_own_table(
        ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    await _fill(url)
    engine = connect(url)
    try:
        keys = KeyStore(engine)
        token = (await keys.create("sup-1", "supervisor"))[1]
        (tmp_path / "costs.yaml").write_text(EUROS)
        settings = settings_for_tests().model_copy(
            update={"costs_file": tmp_path / "costs.yaml"})
        services = Services(client=CollectionClient(ts_env.client, "ops-costs"),
                            ledger=Ledger(engine), keys=keys, settings=settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(
                app=create_app(settings, services)), base_url="http://api") as http:
            auth = {"Authorization": f"Bearer {token}"}
            served = (await http.get("/v1/portfolio/analytics", headers=auth)).json()
            page = await http.get("/ops", headers=auth)
        assert served["total"]["costs"]["currency"] == "EUR"
        assert page.status_code == 200, page.text
        assert "EUR" in page.text, "the lender's cost table, not the bundled one"
    finally:
        await engine.dispose()

"""Schemathesis over the OpenAPI document: no 5xx, every response matches its schema.

The API is served over HTTP by uvicorn, with a real worker and the real dev server, and
schemathesis runs as its own process, as a platform's CI would run it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from uuid import uuid4

import pytest
import uvicorn
from temporalio.testing import WorkflowEnvironment

from duecourse import search_attributes as sa
from duecourse.api import create_app
from duecourse.api.services import Services
from duecourse.runtime import build_worker
from duecourse.store import Ledger, connect, migrate
from duecourse.store.keys import KeyStore
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.devserver import free_port
from tests.conftest import settings_for_tests
from tests.support.sealing import sealed

pytestmark = [pytest.mark.devserver, pytest.mark.timeout(900)]
BIN = Path(sys.executable).parent
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance," \
         "content_type_conformance"


async def test_openapi_contract_holds_under_generated_requests(tmp_path: Path) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), search_attributes=sa.ALL,
        data_converter=sealed())
    engine = connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrate(engine)
    ledger, keys = Ledger(engine), KeyStore(engine)
    settings = settings_for_tests()
    queue = f"st-{uuid4().hex}"
    services = Services(client=CollectionClient(env.client, queue), ledger=ledger, keys=keys,
                        settings=settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, services), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        async with build_worker(env.client, ledger, settings, queue):
            for _ in range(200):  # uvicorn offers no event to await
                if server.started:
                    break
                await asyncio.sleep(0.05)
            for role in ("platform", "supervisor"):
                _, token = await keys.create(f"fuzz-{role}", role)
                proc = await asyncio.create_subprocess_exec(
                    str(BIN / "schemathesis"), "run", f"http://127.0.0.1:{port}/openapi.json",
                    "--checks", CHECKS, "--phases", "fuzzing,stateful", "--max-examples", "40",
                    "--workers", "1",
                    "--request-timeout", "20", "--seed", "42", "-H",
                    f"Authorization: Bearer {token}", "--no-color", cwd=tmp_path,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                out, _ = await asyncio.wait_for(proc.communicate(), 600)
                report = out.decode(errors="replace")
                (tmp_path / f"schemathesis-{role}.txt").write_text(report)
                assert proc.returncode == 0, f"as {role}:\n{report[-6000:]}"
    finally:
        server.should_exit = True
        await serving
        await engine.dispose()
        await env.shutdown()

"""The `duecourse` CLI as an agent runs it: a subprocess pointed, through the environment,
at a test harness's Temporal server, task queue and ledger."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.conftest import Harness


async def run_cli(h: Harness, *args: str, merge_stderr: bool = False,
                  settings: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (`merge_stderr`: stderr interleaved into stdout, as a
    terminal shows them; the third item is then empty); `settings`: more environment."""
    env = {**os.environ, **(settings or {}),
           "TEMPORAL_ADDRESS": h.env.client.service_client.config.target_host,
           "DUECOURSE_TASK_QUEUE": h.task_queue, "COLUMNS": "250", "NO_COLOR": "1",
           "DUECOURSE_DATABASE_URL": h.ledger.engine.url.render_as_string(
               hide_password=False)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), (err or b"").decode()

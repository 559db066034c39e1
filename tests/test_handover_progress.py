"""A long hand-over is never silent when its output is a log or CI, not a terminal.

The CLI runs as a subprocess with its output piped (as CI and `> log` do), against a REAL
Temporal dev server. Only the lines and their counts are checked, never how long anything
took: shared machines are noisy.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from rich.console import Console
from temporalio.client import Client

from duecourse.handover import (
    SHOWN_LOANS,
    RejectedRow,
    StartedLoan,
    StartSummary,
    read_with_progress,
    render_summary,
    start_loans,
)
from duecourse.intake import read_intake_file
from duecourse.settings import Settings
from duecourse.temporal.client import CollectionClient
from duecourse.temporal.connection import connect as connect_temporal
from duecourse.temporal.devserver import DevServer
from tests.support.sealing import session_key_env

ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
HEADER = ("loan_id,borrower_id,borrower_name,phones,email,timezone,language,jurisdiction,"
          "currency,principal,outstanding,days_past_due,policy")
LINE = re.compile(r"^handed over (\d+)/(\d+) rows \((\d+\.\d)/s(, about [^)]+ left)?\): "
                  r"(\d+) started, (\d+) already running, (\d+) rejected(; took .+)?$")


def row(loan_id: str, phone: str = "+8613800138000") -> str:
    return (f"{loan_id},B-{loan_id},Test Borrower,{phone},{loan_id.lower()}@example.com,"
            f"Asia/Shanghai,zh-CN,CN,CNY,1000.00,1000.00,3,demo")


def handover_file(path: Path, ids: list[str], bad: int = 0) -> Path:
    lines = [HEADER, *(row(i) for i in ids), *(row(f"BAD-{n}", phone="12") for n in range(bad))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """A dev server and no worker: a start is done once Temporal accepted it."""
    tmp = tmp_path_factory.mktemp("progress")
    async with DevServer(binary=TEMPORAL_CLI, headless=True,
                         log_file=tmp / "temporal.log") as dev:
        yield dev


@pytest.mark.devserver
async def test_piped_start_prints_progress_lines_with_counts(server: DevServer,
                                                              tmp_path: Path) -> None:
    tag, queue = uuid4().hex[:8], f"tq-{uuid4().hex}"
    ids = [f"P-{tag}-{n}" for n in range(600)]
    path = handover_file(tmp_path / "loans.csv", ids, bad=2)
    client: Client = await connect_temporal(Settings(), address=server.address)
    early = read_intake_file(handover_file(tmp_path / "early.csv", ids[:10]),
                             datetime.now(UTC))
    assert len((await start_loans(CollectionClient(client, queue), early,
                                  now=datetime.now(UTC), allow_demo=True)).started) == 10

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUECOURSE_", "TEMPORAL_"))}
    env.update(session_key_env())  # the keys the test's own clients use
    env["DUECOURSE_ALLOW_DEMO_POLICIES"] = "true"  # a sandbox: its loans run on the demo policy
    env.update(TEMPORAL_ADDRESS=server.address, DUECOURSE_TASK_QUEUE=queue, COLUMNS="200",
               NO_COLOR="1", DUECOURSE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/none.db")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "duecourse.cli", "start", str(path), "--progress-every", "0.1",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode()
    assert proc.returncode == 1, err.decode()  # two rows were rejected

    lines = [m for m in map(LINE.match, text.splitlines()) if m]
    assert len(lines) >= 2, text[:2000]  # at least one while it ran, and the last one
    seen = 0
    for m in lines:
        done, total, started, running, rejected = (int(m[i]) for i in (1, 2, 5, 6, 7))
        assert total == 602 and done == started + running + rejected, m[0]
        assert done >= seen and running <= 10 and rejected <= 2, m[0]
        seen = done
    last = lines[-1]
    assert last[8] is not None, last[0]  # the closing line says how long it took
    assert (int(last[1]), int(last[5]), int(last[6]), int(last[7])) == (602, 590, 10, 2)
    assert "602 rows: 590 started, 10 already running, 2 rejected" in text
    assert text.index(last[0]) < text.index("602 rows: 590 started")


def test_reading_a_large_file_prints_progress_lines(tmp_path: Path) -> None:
    """Validating rows costs a fraction of a millisecond each: a big file takes seconds."""
    path = handover_file(tmp_path / "big.csv", [f"R-{n}" for n in range(3000)], bad=1)
    shown = io.StringIO()
    rows = read_with_progress(path, datetime.now(UTC), Console(file=shown, width=200),
                              every=0.02)
    assert len(rows) == 3001
    lines = shown.getvalue().splitlines()
    assert any(re.fullmatch(rf"reading {re.escape(str(path))}: \d+ s so far", ln)
               for ln in lines), lines
    assert re.fullmatch(rf"read 3001 rows from {re.escape(str(path))} in \d+ s: 3000 valid, "
                        r"1 invalid", lines[-1]), lines


def test_short_steps_print_no_progress_lines(tmp_path: Path) -> None:
    path = handover_file(tmp_path / "small.csv", ["S-1", "S-2"])
    shown = io.StringIO()
    read_with_progress(path, datetime.now(UTC), Console(file=shown), every=30)
    assert shown.getvalue() == ""


def test_a_long_summary_lists_the_first_loans_only() -> None:
    """Printing a 50,000-row table took longer than reading the file."""
    loans = [StartedLoan(row=n, loan_id=f"L-{n}", workflow_id=f"collection-L-{n}",
                         policy="demo@1") for n in range(1, SHOWN_LOANS + 6)]
    shown = io.StringIO()
    render_summary(StartSummary(started=loans), Console(file=shown, width=200))
    text = shown.getvalue()
    assert f"{SHOWN_LOANS + 5} rows: {SHOWN_LOANS + 5} started" in text
    assert f"(the first {SHOWN_LOANS} of {SHOWN_LOANS + 5} loans in collection; `duecourse " \
           "loans` lists them all)" in text
    assert f" L-{SHOWN_LOANS} " in text and f" L-{SHOWN_LOANS + 1} " not in text


def test_rejected_rows_read_as_sentences(tmp_path: Path) -> None:
    """A row pydantic refuses is reported in words, not as `Input should be ...`."""
    path = tmp_path / "loans.csv"
    path.write_text(f"{HEADER}\nL-1,B-1,Li Wei,+8613800138000,li@example.com,Asia/Shanghai,"
                    "zh-CN,CN,CNY,-5,100.00,3,standard\n", encoding="utf-8")
    rows = read_intake_file(path, datetime.now(UTC))
    assert rows[0].error and "Input should be" in rows[0].error  # intake keeps pydantic's
    shown = io.StringIO()
    render_summary(StartSummary(rejected=[RejectedRow(row=1, loan_id="L-1",
                                                      reason=rows[0].error)]),
                   Console(file=shown, width=200))
    text = shown.getvalue()
    assert "principal must be greater than 0" in text and "Input should" not in text, text

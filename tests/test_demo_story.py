"""The bundled demo reaches every ending by itself within about ten minutes.

The demo portfolio runs on the demo policy through the real workflows on the time-skipping
server, with the scripted borrowers, agents and supervisor acting through the client
(`duecourse dev --demo` plays the same stories on real time); the ledger must then show
each story's ending.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from io import StringIO

from rich.console import Console
from temporalio.api.sdk.v1 import WorkflowMetadata

from duecourse.cli.dev import DEMO_FILE, DEMO_POLICY
from duecourse.demo.script import SCENARIOS
from duecourse.demo.watch import DemoRun
from duecourse.intake import read_intake_file, with_policy
from duecourse.policies import load_policy
from duecourse.store import tables as t
from tests.conftest import Harness


async def ui_texts(h: Harness, loan_id: str) -> tuple[str, str]:
    """What the Temporal UI shows for the loan: its summary and current details."""
    handle = h.client.handle(loan_id)
    summary = await (await handle.describe()).static_summary() or ""
    metadata = await handle.query("__temporal_workflow_metadata",
                                  result_type=WorkflowMetadata)
    return summary, metadata.current_details


async def test_the_demo_reaches_every_ending_within_ten_minutes(harness: Harness) -> None:
    env = harness.env
    began = await env.get_current_time()
    rows = with_policy(read_intake_file(DEMO_FILE, began), DEMO_POLICY)
    loans = [r.loan for r in rows if r.loan is not None]
    assert {loan.loan_id for loan in loans} == set(SCENARIOS)
    policy = load_policy(DEMO_POLICY)
    for loan in loans:
        await harness.client.start(loan, policy)

    # The Temporal UI: no borrower PII in the summary, current details that say where
    # the loan is and what comes next (checked again once it has closed).
    pii = [v for loan in loans for v in (loan.borrower.name, loan.borrower.email,
                                          *loan.borrower.phones) if v]
    first = loans[0]
    for _ in range(100):  # until its first workflow task has run (a loaded machine is slow)
        await harness.settle(first.loan_id)
        summary, details = await ui_texts(harness, first.loan_id)
        if details:
            break
        await asyncio.sleep(0.1)
    assert first.loan_id in summary and not [v for v in pii if v in summary + details]
    assert details.startswith("REMINDER · ") and "outstanding" in details \
        and " · next: " in details, details

    out = StringIO()
    run = DemoRun(harness.client, loans, Console(file=out, width=160), sleep=env.sleep,
                  clock=env.get_current_time, poll=5.0)
    endings = await run.run()
    narration = out.getvalue()

    outcomes = {loan_id: s.outcome for loan_id, s in endings.items()}
    assert outcomes == {
        "DEMO-CN-1001": "PAID", "DEMO-CN-1002": "PAID", "DEMO-CN-1003": "WRITTEN_OFF",
        "DEMO-US-2001": "PAID", "DEMO-US-2002": "SETTLED", "DEMO-US-2003": "PAID",
        "DEMO-GB-3001": "WRITTEN_OFF", "DEMO-GB-3002": "PAID"}, narration
    for loan_id, s in endings.items():
        assert s.closed_at is not None and s.closed_at - began <= timedelta(minutes=10), \
            (loan_id, s.closed_at - began)

    for loan in loans:
        summary, details = await ui_texts(harness, loan.loan_id)
        assert details.startswith(f"Closed {outcomes[loan.loan_id]} · "), details
        assert not [v for v in pii if v in summary + details]

    def events(loan_id: str) -> list[str]:
        return [e["kind"] for e in audit if e["loan_id"] == loan_id]

    audit = await harness.rows(t.audit_events)
    stages = {(r["loan_id"], r["to_stage"]) for r in await harness.rows(t.stage_transitions)}
    promises = {(r["loan_id"], r["status"]) for r in await harness.rows(t.promises)}
    assert ("DEMO-CN-1001", "NEGOTIATION") not in stages, "paid while still in reminder"
    assert ("DEMO-CN-1002", "KEPT") in promises
    assert ("DEMO-CN-1003", "BROKEN") in promises
    for referred in ("DEMO-CN-1003", "DEMO-GB-3001"):
        assert (referred, "LEGAL") in stages and "legal_referred" in events(referred)
    assert "plan_completed" in events("DEMO-US-2001"), events("DEMO-US-2001")
    assert {"dispute_opened", "dispute_verified"} <= set(events("DEMO-US-2003"))
    assert "hold_started" in events("DEMO-GB-3002"), events("DEMO-GB-3002")
    assert "Waiting for" in narration
    assert "check promise" in narration and "write off" in narration  # what, and until
    assert "All 8 demo loans reached their endings" in narration

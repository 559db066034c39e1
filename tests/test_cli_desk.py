"""The agent desk through the CLI, as an agent and a supervisor use it (real servers)."""

from __future__ import annotations

import json
from datetime import timedelta

from duecourse.domain.calendar import local_date
from duecourse.policies import load_policy
from tests.conftest import Harness
from tests.factories import make_loan
from tests.support.cli import run_cli

STANDARD = load_policy("standard").model_copy(update={"segments": {}})


async def cli(h: Harness, *args: str) -> tuple[int, str]:
    """Exit code and what the terminal shows (stdout and stderr together)."""
    code, out, _ = await run_cli(h, *args, merge_stderr=True)
    return code, out


async def test_agent_and_supervisor_work_through_the_cli(harness: Harness) -> None:
    h = harness
    now = await h.env.get_current_time()
    loan = make_loan(now, dpd=10, outstanding="1200.00")
    other = make_loan(now, dpd=20)
    for item in (loan, other):
        await h.client.start(item, STANDARD)
        await h.settle(item.loan_id)
    first = (local_date(now, loan.borrower.timezone) + timedelta(days=7)).isoformat()

    code, out = await cli(h, "assign", loan.loan_id, "--to", "agent-7", "--by", "agent-7",
                          "--role", "agent")
    assert code == 0 and "assigned to agent-7" in out
    code, out = await cli(h, "plan", loan.loan_id, "--instalments", "13", "--first", first,
                          "--by", "agent-7")
    assert code == 1 and "13 instalments exceed the maximum of 12" in out
    code, out = await cli(h, "plan", loan.loan_id, "--instalments", "7", "--first", first,
                          "--by", "agent-7")
    assert code == 0 and "Plan PLAN1 accepted" in out and "171.42" in out and "171.48" in out
    code, out = await cli(h, "status", loan.loan_id, "--json")
    status = json.loads(out)
    assert status["assigned_agent"] == "agent-7" and len(status["plan"]["instalments"]) == 7

    pay_by = (local_date(now, other.borrower.timezone) + timedelta(days=10)).isoformat()
    code, out = await cli(h, "settle", other.loan_id, "--amount", "600", "--pay-by", pay_by,
                          "--by", "agent-7")
    assert code == 0 and "waiting for a supervisor" in out
    await h.settle(other.loan_id)
    code, out = await cli(h, "tasks", "--assignee", "supervisors", "--json")
    queue = [t for t in json.loads(out) if t["loan_id"] == other.loan_id]
    assert [t["kind"] for t in queue] == ["approve_settlement"]
    task_id = queue[0]["task_id"]
    code, out = await cli(h, "task", "complete", task_id, "--outcome", "approved",
                          "--by", "agent-7")
    assert code == 1 and "only a supervisor" in out
    code, out = await cli(h, "task", "complete", task_id, "--outcome", "approved",
                          "--by", "sup-1", "--role", "supervisor")
    assert code == 0 and "approve_settlement) done: approved" in out
    code, out = await cli(h, "status", other.loan_id)
    assert code == 0 and "SET1 ACCEPTED" in out

    code, out = await cli(h, "case-event", other.loan_id, "--kind", "filed", "--on", pay_by,
                          "--by", "legal-1")
    assert code == 1 and "no legal case has been referred" in out
    code, out = await cli(h, "task", "complete", "NOPE", "--outcome", "x", "--by", "a")
    assert code == 1 and "no task NOPE" in out

"""The simulator's plans, settlements and supervisor (issue 14 item 1): the behaviour file's
plan adherence, settlement and supervisor rates drive what the ledger shows, through the
engine's own plan schedule, settlement rules and legal decision."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from duecourse.lab.simulator import simulate
from tests.test_simulator import behaviour_file, dump

SEGMENTS = ("self_cure", "cant_pay", "wont_pay", "unreachable")
REACTIONS = ("pay_in_full", "promise", "plan", "settle", "dispute", "opt_out", "hardship",
             "refuse", "talk_only")


def everyone_answers(does: str) -> dict[str, Any]:
    """Nobody pays unprompted; every message reaches the borrower, who then does `does`."""
    return ({f"behaviour.self_cure.{s}": 0.0 for s in SEGMENTS}
            | {f"behaviour.on_reach.{r}": 1.0 if r == does else 0.0 for r in REACTIONS}
            | {f"behaviour.reach.{ch}": 1.0 for ch in ("sms", "email", "voice", "letter")}
            | {"behaviour.reach_by_hour": {"0-24": 1.0},
               "behaviour.dpd_factor": {"1-9999": 1.0}})


def query(ledger: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(ledger) as db:
        return db.execute(sql).fetchall()


def test_plan_adherence_decides_whether_plans_complete_or_break(tmp_path: Path) -> None:
    keeps = behaviour_file(tmp_path, everyone_answers("plan") | {
        f"behaviour.plan_adherence.{s}": 1.0 for s in SEGMENTS})
    kept = simulate(tmp_path / "kept", 20, 120, seed=5, behaviour=keeps)
    plans = query(kept.ledger, "SELECT status, count(*) FROM agreements "
                  "WHERE agreement_type = 'plan' GROUP BY status")
    assert [status for status, _n in plans] == ["COMPLETED"]
    assert plans[0][1] == kept.outcomes["PAID"] >= 15  # every reachable borrower's plan
    reminders = query(kept.ledger, "SELECT count(*) FROM contact_attempts "
                      "WHERE step LIKE 'plan1-reminder-%' AND status = 'sent'")
    assert reminders[0][0] >= 20  # the plan child asked, the loan reminded
    assert dump(kept.ledger) == dump(simulate(tmp_path / "again", 20, 120, seed=5,
                                              behaviour=keeps).ledger)

    breaks = behaviour_file(tmp_path, everyone_answers("plan") | {
        f"behaviour.plan_adherence.{s}": 0.0 for s in SEGMENTS})
    broken = simulate(tmp_path / "broken", 20, 120, seed=5, behaviour=breaks)
    plans = query(broken.ledger, "SELECT status, count(*) FROM agreements "
                  "WHERE agreement_type = 'plan' GROUP BY status")
    assert dict(plans)["BROKEN"] >= 15  # each broken plan, then maybe another one
    assert "COMPLETED" not in dict(plans)
    late = query(broken.ledger, "SELECT DISTINCT json_extract(terms, '$.late') FROM agreements "
                 "WHERE status = 'BROKEN'")
    assert late == [(2,)]  # broken by the second late instalment (standard tolerates one)
    kinds = {k for (k,) in query(broken.ledger, "SELECT DISTINCT kind FROM audit_events")}
    assert {"plan_late", "plan_broken"} <= kinds
    assert query(broken.ledger, "SELECT count(*) FROM payments") == [(0,)]


def test_settlements_beyond_the_agent_wait_for_the_supervisor(tmp_path: Path) -> None:
    """30% off is beyond the standard policy's 20% agent limit: the supervisor decides."""
    base = everyone_answers("settle") | {
        "behaviour.settlement_discount": 0.3, "behaviour.supervisor.decide_hours": 2} | {
        f"behaviour.settlement_paid.{s}": 1.0 for s in SEGMENTS}
    yes = simulate(tmp_path / "yes", 15, 40, seed=2, behaviour=behaviour_file(
        tmp_path, base | {"behaviour.supervisor.settlement_approves": 1.0}))
    settled = yes.outcomes["SETTLED"]
    assert settled >= 10  # every reachable borrower
    assert query(yes.ledger, "SELECT status, count(*) FROM agreements GROUP BY 1") == [
        ("PAID", settled)]
    assert query(yes.ledger, "SELECT status, outcome, count(*) FROM tasks WHERE kind = "
                 "'approve_settlement' GROUP BY 1, 2") == [("done", "approved", settled)]
    no = simulate(tmp_path / "no", 15, 40, seed=2, behaviour=behaviour_file(
        tmp_path, base | {"behaviour.supervisor.settlement_approves": 0.0}))
    assert "SETTLED" not in no.outcomes
    statuses = {s for (s,) in query(no.ledger, "SELECT status FROM agreements")}
    assert statuses == {"REJECTED"}
    assert query(no.ledger, "SELECT count(*) FROM payments") == [(0,)]


def test_the_supervisor_decides_legal_referrals(tmp_path: Path) -> None:
    """Silent borrowers reach legal approval; a deciding supervisor approves (the partner
    takes the case) or rejects (back to negotiation); one who never decides leaves the
    referral escalating at every approval timeout."""
    silent = {f"behaviour.self_cure.{s}": 0.0 for s in SEGMENTS} | {
        f"behaviour.reach.{ch}": 0.0 for ch in ("sms", "email", "voice", "letter", "visit")}

    def run(name: str, decides: float, approves: float) -> set[str]:
        path = behaviour_file(tmp_path, silent | {
            "behaviour.supervisor.legal_decides": decides,
            "behaviour.supervisor.legal_approves": approves})
        result = simulate(tmp_path / name, 10, 75, seed=4, behaviour=path)
        return {k for (k,) in query(result.ledger, "SELECT DISTINCT kind FROM audit_events")}

    approved = run("approve", 1.0, 1.0)
    assert {"legal_approval_requested", "legal_referral_approved", "legal_referred"} <= \
        approved
    assert "legal_approval_overdue" not in approved and "legal_referral_rejected" not in approved
    rejected = run("reject", 1.0, 0.0)
    assert "legal_referral_rejected" in rejected and "legal_referred" not in rejected
    undecided = run("never", 0.0, 1.0)
    assert "legal_approval_overdue" in undecided
    assert not undecided & {"legal_referral_approved", "legal_referral_rejected"}

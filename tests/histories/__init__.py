"""Saved workflow histories: the versioning guard's evidence.

Loans run for months across many deploys, so every deploy must replay the histories of
loans already running. `tests/test_replay_histories.py` replays each JSON file here with
today's workflow code; `python -m tests.histories.record` re-records them (see README.md).

This module is only the manifest (no Temporal imports), shared by the recorder, which must
produce every file listed, and by the test, which fails when one is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HISTORIES = Path(__file__).parent  # no resolve(): the sandbox imports this (mutants)
INDEX = HISTORIES / "index.json"
"""Written by the recorder: each file's workflow id, type and when it was recorded."""
RECORD_COMMAND = "python -m tests.histories.record"


@dataclass(frozen=True)
class Saved:
    """One history the guard needs: its file, its workflow type and what it shows."""

    file: str
    workflow_type: str
    shows: str


EXPECTED: tuple[Saved, ...] = (
    Saved("loan_collection.paid_in_reminder.json", "LoanCollection",
          "reminder notices, then one payment in full -> PAID (a webhook is registered, so "
          "its events are delivered)"),
    Saved("loan_collection.promise_broken_to_legal.json", "LoanCollection",
          "negotiation, two broken promises -> LEGAL; demand letter, cure period, "
          "supervisor approval, referral, case filed and closed as paid, remittance -> PAID"),
    Saved("loan_collection.plan_completed.json", "LoanCollection",
          "an instalment plan agreed (RepaymentPlan child), every instalment paid -> PAID"),
    Saved("loan_collection.settlement_settled.json", "LoanCollection",
          "a settlement offer beyond the agent's limit, supervisor approval, paid -> SETTLED"),
    Saved("loan_collection.written_off.json", "LoanCollection",
          "no response until the policy's write-off DPD -> WRITTEN_OFF"),
    Saved("loan_collection.continued_as_new.first_run.json", "LoanCollection",
          "history_limit=100: the first run, ending in continue-as-new"),
    Saved("loan_collection.continued_as_new.final_run.json", "LoanCollection",
          "history_limit=100: the last run of the same loan, started from carried state, "
          "ending WRITTEN_OFF"),
    Saved("repayment_plan.completed.json", "RepaymentPlan",
          "the plan child of plan_completed: reminders, payments matched, COMPLETED"),
    Saved("legal_case.referred_then_closed.json", "LegalCase",
          "the legal child of promise_broken_to_legal: demand, cure period, approval, "
          "referral to the partner, case events filed and closed"),
    Saved("payment_reconciliation.lost_webhook.json", "PaymentReconciliation",
          "the daily payment reconciliation of yesterday: a sandbox payment whose webhook "
          "never came, one ops alert"),
)

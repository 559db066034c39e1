"""Temporal workflows: deterministic orchestration only (timers, handlers, activity calls)."""

from workflows.collection import LoanCollectionWorkflow
from workflows.repayment_plan import RepaymentPlanWorkflow

WORKFLOWS = [LoanCollectionWorkflow, RepaymentPlanWorkflow]

__all__ = ["WORKFLOWS", "LoanCollectionWorkflow", "RepaymentPlanWorkflow"]

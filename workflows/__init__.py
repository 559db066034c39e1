"""Temporal workflows: deterministic orchestration only (timers, handlers, activity calls)."""

from workflows.collection import LoanCollectionWorkflow
from workflows.legal_case import LegalCaseWorkflow
from workflows.repayment_plan import RepaymentPlanWorkflow

WORKFLOWS = [LoanCollectionWorkflow, RepaymentPlanWorkflow, LegalCaseWorkflow]

__all__ = ["WORKFLOWS", "LegalCaseWorkflow", "LoanCollectionWorkflow",
           "RepaymentPlanWorkflow"]

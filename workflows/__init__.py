"""Temporal workflows: deterministic orchestration only (timers, handlers, activity calls)."""

from duecourse.workflows.collection import LoanCollectionWorkflow
from duecourse.workflows.legal_case import LegalCaseWorkflow
from duecourse.workflows.repayment_plan import RepaymentPlanWorkflow

WORKFLOWS = [LoanCollectionWorkflow, RepaymentPlanWorkflow, LegalCaseWorkflow]

__all__ = ["WORKFLOWS", "LegalCaseWorkflow", "LoanCollectionWorkflow",
           "RepaymentPlanWorkflow"]

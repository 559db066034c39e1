"""Temporal workflows: deterministic orchestration only (timers, handlers, activity calls)."""

from workflows.collection import LoanCollectionWorkflow
from workflows.event_delivery import EventDeliveryWorkflow
from workflows.legal_case import LegalCaseWorkflow
from workflows.repayment_plan import RepaymentPlanWorkflow

WORKFLOWS = [LoanCollectionWorkflow, RepaymentPlanWorkflow, LegalCaseWorkflow,
             EventDeliveryWorkflow]

__all__ = ["WORKFLOWS", "EventDeliveryWorkflow", "LegalCaseWorkflow", "LoanCollectionWorkflow",
           "RepaymentPlanWorkflow"]

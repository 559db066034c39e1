"""Temporal workflows: deterministic orchestration only (timers, handlers, activity calls)."""

from duecourse.workflows.collection import LoanCollectionWorkflow
from duecourse.workflows.event_delivery import EventDeliveryWorkflow
from duecourse.workflows.legal_case import LegalCaseWorkflow
from duecourse.workflows.repayment_plan import RepaymentPlanWorkflow

WORKFLOWS = [LoanCollectionWorkflow, RepaymentPlanWorkflow, LegalCaseWorkflow,
             EventDeliveryWorkflow]  # EventDelivery: only for deliveries started on 0.3

__all__ = ["WORKFLOWS", "EventDeliveryWorkflow", "LegalCaseWorkflow", "LoanCollectionWorkflow",
           "RepaymentPlanWorkflow"]

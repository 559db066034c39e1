"""Temporal workflows: deterministic orchestration only (timers, handlers, activity calls)."""

from workflows.collection import LoanCollectionWorkflow

WORKFLOWS = [LoanCollectionWorkflow]

__all__ = ["WORKFLOWS", "LoanCollectionWorkflow"]

"""Log lines carry the loan: workflow/activity context is lifted into JSON fields."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from duecourse.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_workflow_logger_lines_become_json_with_loan_and_stage(
        capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    # What temporalio's workflow.logger passes along for a workflow log call:
    logging.getLogger("temporalio.workflow").info("stage changed", extra={
        "temporal_workflow": {"workflow_id": "collection-L-42", "run_id": "r-1",
                              "workflow_type": "LoanCollection"},
        "stage": "NEGOTIATION", "from_stage": "REMINDER"})
    structlog.get_logger("activities").info("message sent", workflow_id="collection-L-43",
                                            stage="REMINDER", channel="sms")
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    workflow_line, activity_line = lines[-2], lines[-1]
    assert workflow_line["event"] == "stage changed"
    assert workflow_line["loan_id"] == "L-42" and workflow_line["workflow_id"] == "collection-L-42"
    assert workflow_line["stage"] == "NEGOTIATION" and workflow_line["level"] == "info"
    assert activity_line["loan_id"] == "L-43" and activity_line["channel"] == "sms"
    assert "timestamp" in activity_line


def test_a_retried_activity_error_is_one_line_and_a_bug_keeps_its_traceback(
        capfd: pytest.CaptureFixture[str]) -> None:
    """`dev` stopping mid-send used to print a traceback for a fence its stopping worker
    could not answer: Temporal retries it, so it is one line; a bug is not."""
    from temporalio.exceptions import ApplicationError

    configure_logging("console", "INFO")
    log = logging.getLogger("temporalio.activity")
    for err in (ApplicationError("the send's workflow did not answer its last check",
                                 type="FenceUnavailable"),
                ApplicationError("bad template", type="TemplateError", non_retryable=True),
                KeyError("a bug")):
        try:
            raise err
        except Exception:
            log.warning("Completing activity as failed", exc_info=True)
    text = capfd.readouterr().err
    transient, permanent = text.split("Completing activity as failed")[1:3]
    assert "Traceback" not in transient and "FenceUnavailable: the send's workflow" in transient
    assert "Traceback" in permanent and "TemplateError" in permanent
    assert text.count("Traceback") == 2, text

"""structlog for everything, stdlib logging (Temporal's workflow.logger) routed through it.

Workflow code logs with `workflow.logger` (replay-safe); its context dict is lifted into
top-level `workflow_id` / `run_id` / `loan_id` fields so every line can be filtered by loan.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.types import EventDict
from temporalio.exceptions import ApplicationError

_WORKFLOW_PREFIX = "collection-"


def _lift_temporal_context(_: Any, __: str, event: EventDict) -> EventDict:
    for key in ("temporal_workflow", "temporal_activity"):
        info = event.pop(key, None)
        if isinstance(info, dict):
            for field in ("workflow_id", "run_id", "activity_type", "attempt"):
                if field in info:
                    event.setdefault(field, info[field])
    workflow_id = event.get("workflow_id")
    if isinstance(workflow_id, str) and workflow_id.startswith(_WORKFLOW_PREFIX):
        event.setdefault("loan_id", workflow_id.removeprefix(_WORKFLOW_PREFIX))
    return event


def _transient_in_one_line(_: Any, __: str, event: EventDict) -> EventDict:
    """A retryable `ApplicationError` (a fence the workflow could not answer while its
    worker stops, a lease another attempt holds) is an expected condition Temporal
    retries, not a bug: one line with its type and reason, no traceback. Anything else
    keeps its traceback."""
    exc_info = event.get("exc_info")
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        err = exc_info[1]
    elif isinstance(exc_info, BaseException):
        err = exc_info
    else:
        return event
    if isinstance(err, ApplicationError) and not err.non_retryable:
        event.pop("exc_info")
        event["error"] = f"{err.type or 'ApplicationError'}: {err.message}"
        event["retried"] = True
    return event


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """JSON lines when `fmt == "json"` (production), readable console output otherwise."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _lift_temporal_context,
        _transient_in_one_line,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("sqlalchemy.engine", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The context goes into structured fields instead of the message text.
    from temporalio import activity, workflow

    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False

"""Activity errors by kind, so retries are bounded by what went wrong.

- Transient (the database unreachable or locked, a timeout, a provider's 5xx): retryable
  `ApplicationError`s; the workflow's retry policy backs off.
- Permanent (a constraint or data error, a template or scorer bug, a provider's 4xx):
  non-retryable, so the workflow stops retrying at once and tells ops.

Database messages are cut to their first line with quoted values removed and the cause
chain dropped: a failure travels into Temporal's history, and SQL parameters there would
be borrowers' personal data.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
    SQLAlchemyError,
    StatementError,
)
from temporalio.exceptions import ApplicationError

LEDGER_UNAVAILABLE = "LedgerUnavailable"
LEDGER_DATA_ERROR = "LedgerDataError"
PERMANENT_DB_ERRORS = (IntegrityError, DataError, ProgrammingError, NotSupportedError)

_QUOTED = re.compile(r"'[^']*'|\$\d+")


def _summary(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    first = (str(orig).splitlines() or [""])[0]
    return f"{type(orig).__name__}: {_QUOTED.sub('...', first)}"[:300]


def ledger_error(err: BaseException, what: str) -> ApplicationError:
    """The ApplicationError for a failed ledger operation, retryable unless permanent."""
    # a bare StatementError wraps a value our column types refused (a data error)
    if isinstance(err, PERMANENT_DB_ERRORS) or type(err) is StatementError:
        return ApplicationError(f"the ledger refused {what} ({_summary(err)})",
                                type=LEDGER_DATA_ERROR, non_retryable=True)
    return ApplicationError(f"the ledger is unavailable for {what} ({_summary(err)})",
                            type=LEDGER_UNAVAILABLE)


@contextlib.contextmanager
def ledger_errors(what: str) -> Iterator[None]:
    """Turn database errors inside the block into classified ApplicationErrors."""
    try:
        yield
    except (SQLAlchemyError, OSError, TimeoutError) as err:
        raise ledger_error(err, what) from None

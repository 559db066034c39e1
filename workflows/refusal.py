"""A domain refusal (a problem string or a ValueError) as the caller sees it.

Update validators refuse with `refuse(problem, kind)`; handlers run the transition under
`refusing(kind)`, so state that moved on since validation refuses the update instead of
failing the workflow task (any other exception in an update handler sticks the workflow).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError


def refuse(problem: str | None, kind: str) -> None:
    """Refuse with `problem` (a `kind` ApplicationError) unless there is none."""
    if problem:
        raise ApplicationError(problem, type=kind)


@contextmanager
def refusing(kind: str) -> Iterator[None]:
    """A ValueError raised inside is the domain's refusal: the caller gets it as `kind`."""
    try:
        yield
    except ValueError as err:
        raise ApplicationError(str(err), type=kind) from None

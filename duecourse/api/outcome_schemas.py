"""The answer to a reported contact outcome: accepted, and any rules the contact broke.

A reported outcome is a signal (it is recorded even when the contact broke rules: it
happened, and the limits count it), so the route answers 202 - but an agent who reports a
call at 02:00 must be told at once, with the rule, not find it later in an audit. The
workflow judges the report before it is signalled and the answer carries the verdict.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from duecourse.api.schemas import Accepted


class RuleBroken(BaseModel):
    """One rule the reported contact broke."""

    code: str = Field(description="stable code of the rule, e.g. hours")
    rule: str = Field(description="the rule and its legal reference")
    detail: str = Field(description="what about the contact broke it")


class OutcomeAccepted(Accepted):
    """The outcome is recorded; `violations` lists the rules its contact broke (empty: none)
    and `review_task` the supervisor's task reviewing them."""

    violations: list[RuleBroken] = Field(
        default_factory=list, description="rules the contact broke; each is recorded as a "
        "violation to review")
    local_time: str | None = Field(
        default=None, description="the borrower's wall clock when the contact was judged")
    review_task: str | None = Field(
        default=None, description="the supervisor's review task, when one was opened")
    checked: bool = Field(
        default=True, description="false: the contact could not be checked now (no worker "
        "answered); the loan reviews it when it runs, and the audit checks it")

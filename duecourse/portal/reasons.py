"""The engine's refusals in the borrower's language.

The engine answers a refused update with an English sentence (its validators' reason).
The page knows the sentences its actions can get - promise, plan, settlement, hardship,
breathing space and call back refusals, and the compliance rules that refuse a call at a
time - and shows each as a words.yaml text (`why_*`) in the borrower's language, with
the values the engine named. A sentence it does not know is shown as it came in English
(the engine speaks English), and in any other language as one general sentence - never
as raw English on a Chinese page.
"""

from __future__ import annotations

import re

from duecourse.domain.work.callbacks import RULE_MARK
from duecourse.portal.i18n import Words

_V = r"(?P<{}>\S+)"
REFUSALS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (key, re.compile(pattern)) for key, pattern in (
        # any update on a loan that ended meanwhile
        ("why_closed", r"^the loan is closed \(.*\)$"),
        # promises, plans and settlements (duecourse.domain.case.aggregate, agreements.deals)
        ("why_legal", r"^the loan is in the legal stage"),
        ("why_plan_active", r"^plan \S+ is active"),
        ("why_settlement_open", r"^settlement \S+ is "),
        ("why_promise_active", r"^promise \S+ (for .* due|is still active until) "
                               + _V.format("date") + r"( is still active)?$"),
        ("why_amount_zero", r"^amount must be greater than zero$"),
        ("why_over_balance", r"^amount .* exceeds the outstanding balance "
                             + _V.format("balance") + " " + _V.format("currency") + "$"),
        ("why_date_past", r"^promised date \S+ is in the past"),
        ("why_date_far", r"^promised date \S+ is more than (?P<days>\d+) days ahead; the "
                         r"latest allowed is " + _V.format("latest") + "$"),
        ("why_too_many", r"^\d+ instalments exceed the maximum of (?P<most>\d+)$"),
        ("why_plan_total", r"^the plan totals "),
        ("why_first_past", r"^the first instalment date \S+ is in the past"),
        ("why_first_far", r"^the first instalment is (?P<days>\d+) days away; at most "
                          r"(?P<most>\d+) allowed$"),
        ("why_gap", r"^(?P<gap>\d+) days between instalments due .*; at most (?P<most>\d+) "
                    r"allowed$"),
        ("why_below_minimum", r"^instalment \d+ of .* is below the minimum of "
                              + _V.format("minimum") + " " + _V.format("currency")),
        ("why_below_down", r"^the first instalment of .* is below the minimum down payment "
                           r"of " + _V.format("minimum") + " " + _V.format("currency") + "$"),
        ("why_not_discount", r"^.* is not a discount on the outstanding "),
        ("why_below_floor", r"^.* is below the policy floor of " + _V.format("minimum")
                            + " " + _V.format("currency")),
        ("why_pay_by_far", r"^pay-by date \S+ is more than (?P<days>\d+) days ahead$"),
        ("why_pay_by_past", r"^pay-by date \S+ is in the past"),
        # holds and breathing space (duecourse.domain.contact.protections, work.breathing)
        ("why_hold_active", r"^a \S.* hold is already active$"),
        ("why_no_breathing", r"^breathing space does not apply in "),
        ("why_breathing_registered", r"^a breathing space is already registered$"),
        ("why_breathing_asked", r"^a breathing space request is already being looked into$"),
        # call backs (duecourse.domain.work.callbacks)
        ("why_callback_past", r"^the call-back time (?P<when>.+) has passed$"),
        ("why_callback_far", r"^the call-back time (?P<when>.+) is more than (?P<days>\d+) "
                             r"days ahead$"),
        ("why_callback_booked", r"^a call back is already booked$"),
        ("why_callback_phone", r"^no phone number on file$"),
        ("why_callback_rule", r"^we may not call at (?P<when>\S+ \S+): (?P<detail>.+)$"),
    ))
"""Refusal sentence patterns -> words.yaml keys (named groups are the text's values)."""

RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (key, re.compile(pattern)) for key, pattern in (
        ("rule_hours", r"^outside lawful contact hours"),
        ("rule_policy_hours", r"^outside the policy's contact hours"),
        ("rule_inconvenient", r"^inside a time the borrower named as inconvenient"),
        ("rule_holiday", r"^on a public holiday"),
        ("rule_hold", r"^(during a .*hold|[a-z ]+ hold( until .*)?)( \(|$)"),
        ("rule_call_limits", r"^(daily limit of answered calls reached|daily limit of "
                             r"unanswered attempts|call limit for consecutive days)"),
        ("rule_after_conversation", r"^too soon after a conversation"),
        ("rule_dispute", r"^the debt is disputed"),
        ("rule_cease", r"^the borrower asked us to cease communication"),
        ("rule_attorney", r"^an attorney represents the borrower"),
        ("rule_opted_out", r"^the borrower opted out of voice"),
        ("rule_validation_notice", r"^our policy: the validation notice goes out"),
        ("rule_bankruptcy", r"^the borrower is in bankruptcy"),
    ))
"""The compliance rules' descriptions (duecourse.domain.compliance) a call back can meet."""


def _rule(detail: str, words: Words) -> str:
    """A compliance rule's description and its reference - "outside lawful contact hours;
    rule 12 CFR 1006.6(b)(1)(i): no contact before ..." - as the rule's words and the
    bare citation (its English gloss left out; a reference that is no citation too)."""
    described, mark, reference = detail.rpartition(f"; {RULE_MARK}")
    if not mark:
        described = reference
    rule = next((k for k, p in RULES if p.search(described)), None)
    why = words(rule) if rule else words("rule_unknown")
    cite, colon, _ = reference.partition(": ")
    return f"{why} ({cite})" if mark and colon and cite else why


def known(reason: str) -> str | None:
    """The words key for an engine refusal, or None when the page does not know it."""
    return next((key for key, pattern in REFUSALS if pattern.search(reason.strip())), None)


def explain(reason: str, words: Words) -> str:
    """The refusal as the borrower reads it, in the page's language."""
    text = reason.strip()
    for key, pattern in REFUSALS:
        match = pattern.search(text)
        if match is None:
            continue
        values = {k: v or "" for k, v in match.groupdict().items()}
        if key == "why_callback_rule":
            values["why"] = _rule(values.pop("detail"), words)
        return words("refused", reason=words(key, **values))
    if words.language == "en":
        return words("refused", reason=text)
    return words("refused_unknown")

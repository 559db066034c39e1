"""Loan intake validation, policies as data, templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from duecourse.domain.loan import LoanIntake, LoanNotOverdue
from duecourse.domain.policy import Anchor, Policy
from duecourse.policies import UnknownPolicy, available_policies, load_policy, load_policy_file
from duecourse.templates import TemplateError, load_templates, render, template_info

GOOD: dict[str, Any] = {
    "loan_id": "L-1001",
    "borrower": {"borrower_id": "B-1", "name": "Maria Lopez", "phones": ["+1 (212) 555-0134"],
                 "email": "maria@example.com", "timezone": "America/New_York"},
    "jurisdiction": "us", "currency": "usd", "principal": "2500", "outstanding": "812.40",
    "due_date": "2026-11-01",
}


def with_(path: str, value: Any) -> dict[str, Any]:
    data = {**GOOD, "borrower": {**GOOD["borrower"]}}
    target = data
    *parents, leaf = path.split(".")
    for key in parents:
        target = target[key]
    target[leaf] = value
    return data


def test_a_good_loan_is_normalised() -> None:
    loan = LoanIntake.model_validate(GOOD)
    assert loan.currency == "USD" and loan.jurisdiction == "US"
    assert loan.outstanding == Decimal("812.40") and loan.policy == "standard"
    assert loan.borrower.phones == ["+12125550134"]
    assert loan.workflow_id == "collection-L-1001"
    assert LoanIntake.model_validate(with_("jurisdiction", "uk")).jurisdiction == "GB"


@pytest.mark.parametrize(("path", "value", "message"), [
    ("outstanding", "-5", "outstanding\n  Input should be greater than 0"),
    ("principal", "0", "principal\n  Input should be greater than 0"),
    ("outstanding", "10.001", "more decimal places than USD allows"),
    ("currency", "XYZ", "unknown currency 'XYZ'"),
    ("borrower.timezone", "Europe/Atlantis", "unknown time zone 'Europe/Atlantis'"),
    ("borrower.phones", ["555-0134"], "malformed phone number '555-0134'"),
    ("borrower.email", "not-an-email", "borrower.email"),
    ("loan_id", "has spaces", "loan_id"),
    ("jurisdiction", "USA", "ISO 3166 country code"),
])
def test_bad_input_gets_a_precise_error(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        LoanIntake.model_validate(with_(path, value))
    assert message in str(err.value)


def test_a_borrower_must_be_reachable() -> None:
    data = with_("borrower.phones", [])
    data["borrower"]["email"] = ""
    with pytest.raises(ValidationError, match="no phone, email or postal address"):
        LoanIntake.model_validate(data)


def test_not_yet_overdue_in_the_borrowers_zone() -> None:
    loan = LoanIntake.model_validate(with_("due_date", "2026-11-01"))
    # 03:00 UTC on Nov 2 is still Nov 1 in New York: due today, not overdue
    with pytest.raises(LoanNotOverdue, match="not overdue: due 2026-11-01"):
        loan.ensure_overdue(datetime(2026, 11, 2, 3, 0, tzinfo=UTC))
    loan.ensure_overdue(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))
    assert loan.days_past_due(datetime(2026, 11, 11, 12, 0, tzinfo=UTC)) == 10


def test_builtin_policies_load_and_demo_is_compressed() -> None:
    assert {"standard", "demo"} <= set(available_policies())
    standard, demo = load_policy("standard"), load_policy("demo")
    assert standard.legal.cure_period >= timedelta(days=14)  # UK CCA s88 minimum
    assert standard.promise.max_broken == 2 and standard.write_off_dpd == 180
    assert standard.reminder.steps[0].anchor is Anchor.DUE_DATE
    assert [s.name for s in demo.reminder.steps] == [s.name for s in standard.reminder.steps]
    longest = max(s.offset for s in demo.reminder.steps + demo.negotiation.steps)
    assert longest <= timedelta(minutes=5)
    assert demo.reminder.window + demo.negotiation.window + demo.legal.cure_period \
        <= timedelta(minutes=10)


def test_policy_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\nreminder: {steps: [], window: P1D}\n")
    with pytest.raises(ValueError, match=r"invalid policy file .*broken.yaml"):
        load_policy_file(bad)
    with pytest.raises(UnknownPolicy, match="unknown policy 'nope'; available: "):
        load_policy("nope")


def test_policy_dir_overrides_builtin(tmp_path: Path) -> None:
    data = load_policy("standard").model_dump(mode="json")
    data["write_off_dpd"] = 120  # closed-end instalment charge-off
    (tmp_path / "standard.yaml").write_text(Policy.model_validate(data).model_dump_json())
    assert load_policy("standard", str(tmp_path)).write_off_dpd == 120


def test_duplicate_step_names_are_rejected() -> None:
    data = load_policy("standard").model_dump(mode="json")
    data["reminder"]["steps"].append(data["reminder"]["steps"][0])
    with pytest.raises(ValidationError, match="step names must be unique"):
        Policy.model_validate(data)


VALUES = {"borrower_name": "Maria", "loan_id": "L-1", "amount": "812.40 USD",
          "due_date": "2026-11-01", "days_past_due": "12", "cure_days": "14",
          "lender_name": "Acme", "lender_contact": "800-555-0100"}


def test_every_policy_template_renders_in_english_and_chinese() -> None:
    templates = {s.template for name in ("standard", "demo")
                 for s in [*load_policy(name).reminder.steps,
                           *load_policy(name).negotiation.steps,
                           load_policy(name).legal.demand_letter]}
    for template in templates:
        info = template_info(template)
        for language in ("en", "zh-CN"):
            rendered = render(template, language, VALUES, audience=info.audience)
            assert rendered.language == language
            assert "{" not in rendered.body and "L-1" in rendered.body
    assert set(templates) <= set(load_templates())


def test_template_language_fallback_and_strictness() -> None:
    assert render("overdue_notice", "zh-TW", VALUES).language == "zh-CN"
    assert render("overdue_notice", "fr", VALUES).language == "en"
    with pytest.raises(TemplateError, match=r"no value for placeholder \{amount\}"):
        render("overdue_notice", "en", {k: v for k, v in VALUES.items() if k != "amount"})
    with pytest.raises(TemplateError, match="unknown template"):
        render("nope", "en", VALUES)


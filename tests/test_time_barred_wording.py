"""No legal-threat wording on a time-barred debt (12 CFR 1006.26(b): no suit or threat of
suit): the linter finds such wording, the policy loader marks the steps whose templates
use it, and the contact path never tries them on a time-barred debt - it falls back to a
channel whose template does not speak of legal action, or skips the step (no failed send,
no ops alert)."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from duecourse.domain.loan import LoanIntake
from duecourse.domain.policy import Channel, ContactStep, Policy
from duecourse.policies import load_policy, load_policy_file
from duecourse.store import tables as t
from duecourse.templates import lint_templates, template_info
from tests.conftest import Harness, advance_to_local
from tests.factories import make_loan

NEW_YORK = ZoneInfo("America/New_York")
BARRED_DPD = 4 * 365  # US-NC: 3 years from the due date
RECENT_DPD = 12


# ------------------------------------------------------------------ the linter
def _catalogue(tmp_path: Path, body_en: str, body_zh: str, declared: bool = False) -> Path:
    path = tmp_path / f"messages-{'declared' if declared else 'undeclared'}.yaml"
    flag = "  mentions_legal_action: true\n" if declared else ""
    path.write_text(f"wording:\n  audience: borrower\n  channels: [email]\n{flag}"
                    f"  en: {{subject: 'Loan {{loan_id}}', body: '{body_en}'}}\n"
                    f"  zh-CN: {{body: '{body_zh}'}}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("body_en", "body_zh", "phrase_en", "phrase_zh"), [
    ("If we cannot agree, the account may be referred for formal recovery.",
     "如无法达成一致账户可能进入正式追偿程序。", "formal recovery", "追偿"),
    ("If we do not hear from you, we may send a formal demand.",
     "如未收到您的回复我们可能发送正式催告函。", "formal demand", "催告"),
    ("The matter may go to recovery proceedings.", "我们可能申请强制执行。",
     "recovery proceedings", "强制执行"),
])
def test_lint_flags_undeclared_legal_action_wording(
        tmp_path: Path, body_en: str, body_zh: str, phrase_en: str, phrase_zh: str) -> None:
    empty = tmp_path / "jurisdictions.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    problems = lint_templates(_catalogue(tmp_path, body_en, body_zh), empty)
    found = {p.where: p for p in problems if "legal action" in p.rule}
    assert set(found) == {"wording[en].body", "wording[zh-CN].body"}
    assert phrase_en in found["wording[en].body"].phrase.lower()
    assert phrase_zh in found["wording[zh-CN].body"].phrase
    assert all("1006.26(b)" in p.rule for p in found.values())
    declared = _catalogue(tmp_path, body_en, body_zh, declared=True)
    assert lint_templates(declared, empty) == []


def test_the_catalogue_declares_every_template_that_speaks_of_legal_action(
        tmp_path: Path) -> None:
    assert lint_templates() == []
    empty = tmp_path / "jurisdictions.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    harmless = _catalogue(  # wording that threatens nothing is left alone
        tmp_path, "Before we take any further steps we want to help. Paying now avoids "
        "further charges. This is a courtesy call; formally, nothing changes.",
        "在采取任何进一步措施之前我们愿意为您提供帮助。您也可以获得免费的法律援助和债务咨询。")
    assert lint_templates(harmless, empty) == []
    declared = {name for name in ("next_steps", "final_offer", "demand_letter")
                if template_info(name).mentions_legal_action}
    assert declared == {"next_steps", "final_offer", "demand_letter"}
    assert not template_info("repayment_options").mentions_legal_action
    assert not template_info("forbearance_offer").mentions_legal_action


# ------------------------------------------------------------------ the policy loader
def test_the_loader_marks_the_steps_whose_templates_speak_of_legal_action() -> None:
    policy = load_policy("standard")
    steps = {s.name: s for s in [*policy.reminder.steps, *policy.negotiation.steps,
                                 policy.legal.demand_letter]}
    marked = {name for name, s in steps.items() if s.mentions_legal_action}
    assert marked == {"next-steps-email", "final-offer-letter", "demand-letter"}
    assert set(steps["next-steps-email"].legal_action_channels) == {Channel.EMAIL,
                                                                    Channel.LETTER}
    assert set(steps["demand-letter"].legal_action_channels) == {Channel.LETTER,
                                                                 Channel.EMAIL}
    assert steps["notice-email"].legal_action_channels == []


def test_the_loader_marks_only_the_channels_whose_template_speaks_of_it(
        tmp_path: Path) -> None:
    step = _with_sms_fallback(load_policy("standard"), tmp_path).reminder.steps[-1]
    assert step.name == "next-steps-email" and step.mentions_legal_action
    assert step.speaks_of_legal_action(Channel.EMAIL)
    assert not step.speaks_of_legal_action(Channel.SMS)


def test_a_policy_payload_without_the_marks_still_loads() -> None:
    """Workflows started before the field existed carry policies without it."""
    payload = load_policy("standard").model_dump(mode="json")
    for stage in ("reminder", "negotiation"):
        for step in payload[stage]["steps"]:
            del step["legal_action_channels"]
    del payload["legal"]["demand_letter"]["legal_action_channels"]
    old = Policy.model_validate(payload)
    assert not any(s.mentions_legal_action for s in old.reminder.steps)
    assert ContactStep.model_validate(
        {"name": "x", "channel": "email", "template": "next_steps"}
    ).legal_action_channels == []


# ------------------------------------------------------------------ the workflow
def _policy() -> Policy:
    """The standard policy, timing as written, and no write-off before the debt is old."""
    return load_policy("standard").model_copy(update={"segments": {}, "write_off_dpd": 5000})


def _with_sms_fallback(base: Policy, tmp_path: Path) -> Policy:
    """next-steps-email may fall back to an SMS reminder, which says nothing of suit."""
    data = base.model_dump(mode="json", exclude_defaults=True)
    step = data["reminder"]["steps"][-1]
    assert step["name"] == "next-steps-email"
    step["templates"] = {"sms": "overdue_reminder"}
    step.pop("legal_action_channels", None)
    path = tmp_path / f"{base.name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_policy_file(path)


def _nc_loan(now: Any, dpd: int) -> LoanIntake:
    return make_loan(now, dpd=dpd, tz="America/New_York", jurisdiction="US-NC",
                     currency="USD", language="en", phones=["+19195550134"],
                     email="jo.smith@example.com", address="1 Main St, Raleigh NC")


async def _run_to_next_steps(h: Harness, policy: Policy, dpd: int) -> LoanIntake:
    await advance_to_local(h, NEW_YORK, time(10, 0))
    loan = _nc_loan(await h.env.get_current_time(), dpd)
    await h.client.start(loan, policy)
    await h.settle(loan.loan_id)
    await h.env.sleep(timedelta(hours=2))  # the overdue reminder steps go, late
    await h.settle(loan.loan_id)
    return loan


async def _step_events(h: Harness, loan: LoanIntake, step: str) -> list[dict[str, Any]]:
    return [r for r in await h.rows(t.audit_events, loan_id=loan.loan_id)
            if r["kind"].startswith("contact_")
            and r["data"].get("details", {}).get("step") == step]


async def _alerts(h: Harness, loan: LoanIntake) -> list[str]:
    """Ops alerts other than the stale nudges any late-handed-over loan skips."""
    return [f"{r['subject']}: {r['body']}"
            for r in await h.rows(t.ops_alerts, loan_id=loan.loan_id)
            if "skipped as stale" not in r["subject"]]


async def _sent(h: Harness, loan: LoanIntake) -> list[dict[str, Any]]:
    return [r for r in await h.rows(t.contact_attempts, loan_id=loan.loan_id)
            if r["status"] == "sent"]


async def test_time_barred_debt_skips_the_next_steps_email_without_failing(
        harness: Harness) -> None:
    h = harness
    loan = await _run_to_next_steps(h, _policy(), BARRED_DPD)
    events = await _step_events(h, loan, "next-steps-email")
    assert [e["kind"] for e in events] == ["contact_skipped"], events
    detail = events[0]["data"]["details"]["detail"]
    assert "time-barred" in detail and "legal action" in detail and "1006.26(b)" in detail
    sent = await _sent(h, loan)
    assert sent, "the other reminders still go: collecting a time-barred debt is lawful"
    assert not any(r["template"] == "next_steps" for r in sent)
    assert await _alerts(h, loan) == []
    decisions = await h.rows(t.compliance_decisions, loan_id=loan.loan_id)
    assert not any(d["step"] == "next-steps-email" for d in decisions), \
        "the step is never tried: no engine decision, no send"


async def test_time_barred_debt_falls_back_to_wording_without_legal_action(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    loan = await _run_to_next_steps(h, _with_sms_fallback(_policy(), tmp_path), BARRED_DPD)
    events = await _step_events(h, loan, "next-steps-email")
    assert not any(e["kind"] in ("contact_skipped", "contact_failed") for e in events)
    fallback = [r for r in await _sent(h, loan) if r["step"] == "next-steps-email"]
    assert [(r["channel"], r["template"]) for r in fallback] == [("sms", "overdue_reminder")]
    assert await _alerts(h, loan) == []


async def test_a_debt_that_is_not_time_barred_gets_the_next_steps_email(
        harness: Harness) -> None:
    h = harness
    policy = _policy()
    assert policy.reminder.steps[-1].mentions_legal_action, "marked, yet it goes"
    loan = await _run_to_next_steps(h, policy, RECENT_DPD)
    assert await _step_events(h, loan, "next-steps-email") == []
    sent = [r for r in await _sent(h, loan) if r["step"] == "next-steps-email"]
    assert [(r["channel"], r["template"]) for r in sent] == [("email", "next_steps")]
    assert "formal recovery" in sent[0]["body"]
    assert await _alerts(h, loan) == []

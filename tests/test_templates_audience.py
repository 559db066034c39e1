"""What is for agents never reaches borrowers; a message goes only on channels it is
written for. Running the demo once sent an agent's call script to a borrower as an SMS."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from duecourse.domain.compliance.requests import PreferenceChange
from duecourse.domain.policy import Channel
from duecourse.policies import BUILTIN_DIR, load_policy, load_policy_file
from duecourse.store import tables as t
from duecourse.templates import TemplateError, render, template_info
from tests.conftest import Harness, advance_to_local
from tests.factories import AGENT
from tests.test_domain_loan_policy import VALUES
from tests.test_workflow_negotiation import STANDARD, start

AGENT_SCRIPT_MARKS = ("Call script", "Agent call", "坐席", "通话脚本")


def test_render_refuses_an_agent_script_for_a_borrower_and_a_wrong_channel() -> None:
    assert template_info("negotiation_call").audience == "agent"
    with pytest.raises(TemplateError, match="written for the agent"):
        render("negotiation_call", "en", VALUES, channel="voice")
    with pytest.raises(TemplateError, match="written for letter, email, not for sms"):
        render("demand_letter", "en", VALUES, channel="sms")
    script = render("negotiation_call", "en", VALUES, audience="agent")
    assert "Agent call" in script.body


def test_every_template_declares_its_audience_and_channels() -> None:
    from duecourse.templates import load_templates

    for name in load_templates():
        info = template_info(name)
        assert info.audience in ("borrower", "agent", "partner") and info.channels


def test_a_policy_whose_automated_step_would_send_an_agent_script_is_refused(
        tmp_path: Path) -> None:
    data = yaml.safe_load((BUILTIN_DIR / "standard.yaml").read_text())
    for step in data["reminder"]["steps"]:
        if step["name"] == "courtesy-call":
            step["template"] = "negotiation_call"  # an agent's script, on an automated call
    path = tmp_path / "standard.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="courtesy-call sends 'negotiation_call' to the "
                                         "borrower on voice"):
        load_policy_file(path)


def test_fallback_channels_get_a_borrower_template_written_for_them() -> None:
    steps = {s.name: s for s in load_policy("standard").reminder.steps}
    assert steps["courtesy-call"].templates == {Channel.SMS: "overdue_reminder",
                                                Channel.EMAIL: "overdue_reminder"}
    assert steps["notice-sms"].templates == {Channel.EMAIL: "overdue_notice"}, \
        "not voice: a text message is no call script"
    assert steps["notice-sms"].template_for(Channel.VOICE) is None


async def test_a_blocked_call_falls_back_to_a_borrower_message_never_the_script(
        harness: Harness) -> None:
    h = harness
    shanghai = ZoneInfo("Asia/Shanghai")
    await advance_to_local(h, shanghai, time(9, 0))
    automated = await start(h, STANDARD, dpd=7)  # the courtesy call is due at 11:00
    opted = await start(h, STANDARD, dpd=7)
    await h.client.update_contact_preferences(opted.loan_id, PreferenceChange(
        opt_out=[Channel.VOICE], actor=AGENT, note="no calls please"))
    await h.env.sleep(timedelta(hours=3))
    for loan in (automated, opted):
        rows = await h.rows(t.contact_attempts, loan_id=loan.loan_id)
        assert not any(m in r["body"] for r in rows for m in AGENT_SCRIPT_MARKS)
    call = {r["step"]: r for r in await h.rows(t.contact_attempts,
                                               loan_id=automated.loan_id)}["courtesy-call"]
    assert (call["channel"], call["template"]) == ("voice", "courtesy_call")
    assert "automated courtesy call" in call["body"] or "自动提醒电话" in call["body"]
    fallback = {r["step"]: r for r in await h.rows(t.contact_attempts,
                                                   loan_id=opted.loan_id)}["courtesy-call"]
    assert (fallback["channel"], fallback["template"]) in (("sms", "overdue_reminder"),
                                                           ("email", "overdue_reminder"))

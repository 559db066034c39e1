"""`duecourse policy NAME`: the policy as the workflow receives it, then where it departs
from the law - law vs our policy, stricter or looser (issue 9). No servers needed."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from duecourse.cli.app import app
from duecourse.domain.policy import Policy
from duecourse.policies import BUILTIN_DIR, load_policy

runner = CliRunner()


def shown(*args: str) -> str:
    result = runner.invoke(app, ["policy", *args], env={"DUECOURSE_POLICY_DIR": ""})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_policy_shows_the_us_dispute_choice_as_stricter_than_the_law() -> None:
    data = json.loads(shown("standard", "--json"))
    assert {k: v for k, v in data.items() if k != "departures_from_law"} == \
        load_policy("standard").model_dump(mode="json"), "the policy keys are unchanged"
    found = data["departures_from_law"]
    us = {d["parameter"]: d for d in found["US"]["departures"]}
    dispute = us["dispute_freezes_only_written_in_validation_period"]
    assert (dispute["law"], dispute["policy"], dispute["direction"]) == \
        (True, False, "stricter")
    assert "1006.38(d)(2)" in dispute["reference"]
    hours = us["contact_hours"]  # 21:00 itself is lawful in the US, not in our policy
    assert hours["law"]["end_inclusive"] and not hours["policy"]["end_inclusive"]
    assert hours["direction"] == "stricter" and hours["source"] == "contact_hours"
    assert found["CN"]["departures"][0]["law"]["end"] == "22:00:00"
    assert "GB" not in found and "*" not in found, "GB's hours are ours: no departure"

    text = shown("standard")
    assert "# Where this policy departs from the law" in text
    assert ("dispute_freezes_only_written_in_validation_period: law true, our policy "
            "false - stricter") in text
    assert "our policy 08:00-21:00 (until 21:00) - stricter" in text
    assert Policy.model_validate(yaml.safe_load(text)) == load_policy("standard"), \
        "the departures are YAML comments: the output still loads as the policy"


def test_policy_shows_a_looser_override_as_looser(tmp_path: Path) -> None:
    standard = (BUILTIN_DIR / "standard.yaml").read_text(encoding="utf-8")
    (tmp_path / "bold.yaml").write_text(
        standard.replace("name: standard", "name: bold")
        + '  "*": {no_contact_on_public_holidays: true}\n  GB: {max_call_attempts: 4}\n',
        encoding="utf-8")
    found = json.loads(shown("bold", "--json", "--policy-dir", str(tmp_path)))[
        "departures_from_law"]
    gb = {d["parameter"]: d["direction"] for d in found["GB"]["departures"]}
    assert gb == {"no_contact_on_public_holidays": "stricter",
                  "max_call_attempts": "stricter"}
    assert {d["parameter"] for d in found["*"]["departures"]} == \
        {"no_contact_on_public_holidays"}

    (tmp_path / "loose.yaml").write_text(
        standard.replace("name: standard", "name: loose")
        .replace("dispute_freezes_only_written_in_validation_period: false",
                 "max_call_attempts: 9"), encoding="utf-8")
    text = shown("loose", "--policy-dir", str(tmp_path))
    assert "max_call_attempts: law 7, our policy 9 - looser" in text
    assert "dispute_freezes_only" not in text.split("Where this policy")[1]

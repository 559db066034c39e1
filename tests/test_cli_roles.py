"""`--role` at the CLI: the one `Role`, less `platform` (a person never acts as one)."""

from __future__ import annotations

from typer.testing import CliRunner

from duecourse.cli.app import app


def test_a_person_acts_in_a_persons_role_never_as_a_platform() -> None:
    """Refused while the command line is read, before Temporal or the ledger is asked."""
    runner = CliRunner()
    for role in ("platform", "admin"):
        result = runner.invoke(app, ["assign", "L-1", "--to", "agent-7", "--by", "sup-1",
                                     "--role", role], env={"COLUMNS": "250", "NO_COLOR": "1"})
        assert result.exit_code == 2, result.output
        assert f"'{role}' is not one of 'agent', 'supervisor', 'ops'" in result.output
    shown = runner.invoke(app, ["assign", "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert shown.exit_code == 0
    assert "<agent|supervisor|ops>" in shown.output and "[default: supervisor]" in shown.output

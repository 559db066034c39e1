"""The CLI cannot point at the wrong data: it reads the settings `duecourse dev` wrote,
and never creates an empty ledger behind a read (issue 10, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from duecourse.cli.app import app
from duecourse.cli.env_file import cli_settings, write_env
from duecourse.settings import Settings

runner = CliRunner()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DUECOURSE_DATABASE_URL", "DUECOURSE_DATA_DIR", "DUECOURSE_TEMPORAL_ADDRESS",
                 "DUECOURSE_TEMPORAL_NAMESPACE", "DUECOURSE_TASK_QUEUE", "TEMPORAL_ADDRESS",
                 "TEMPORAL_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_read_never_creates_an_empty_ledger(tmp_path: Path,
                                              clean_env: pytest.MonkeyPatch) -> None:
    """It used to create `.duecourse/ledger.db` where the command ran and report 0 tasks."""
    clean_env.chdir(tmp_path)
    for command in (["tasks"], ["audit"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        assert "no ledger at" in result.output
        assert str((tmp_path / ".duecourse" / "ledger.db").resolve()) in \
            result.output.replace("\n", "")
    assert not (tmp_path / ".duecourse" / "ledger.db").exists()


def test_the_cli_reads_what_duecourse_dev_wrote(tmp_path: Path,
                                                clean_env: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    dev = Settings(data_dir=data, temporal_address="127.0.0.1:7999",
                   temporal_namespace="demo-ns", task_queue="tq-dev")
    written = write_env(dev, "http://127.0.0.1:8123")
    assert written == (data / "env").resolve()
    clean_env.chdir(tmp_path)  # elsewhere: the data dir names the file
    clean_env.setenv("DUECOURSE_DATA_DIR", str(data))
    cfg, path = cli_settings()
    assert path == written
    assert (cfg.temporal_address, cfg.temporal_namespace, cfg.task_queue) == (
        "127.0.0.1:7999", "demo-ns", "tq-dev")
    assert cfg.ledger_url == f"sqlite+aiosqlite:///{(data / 'ledger.db').resolve()}"
    clean_env.setenv("TEMPORAL_ADDRESS", "10.0.0.1:7233")  # the environment wins
    assert cli_settings()[0].temporal_address == "10.0.0.1:7233"
    printed = runner.invoke(app, ["env"])
    assert printed.exit_code == 0, printed.output
    assert "export DUECOURSE_TEMPORAL_ADDRESS=127.0.0.1:7999" in printed.output
    assert "export DUECOURSE_API_URL=http://127.0.0.1:8123" in printed.output


def test_the_ledger_url_never_depends_on_the_working_directory(
        tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.chdir(tmp_path)
    url = Settings().ledger_url
    assert url == f"sqlite+aiosqlite:///{(tmp_path / '.duecourse' / 'ledger.db').resolve()}"


def test_cli_rejections_are_sentences(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    """A value the request models refuse reads as a sentence, never pydantic's phrasing
    ("String should have at most 128 characters"); nothing is sent."""
    clean_env.chdir(tmp_path)
    clean_env.setenv("DUECOURSE_TEMPORAL_ADDRESS", "127.0.0.1:1")  # never reached
    result = runner.invoke(app, ["outcome", "L-1", "--channel", "sms", "--result", "reached",
                                 "--agent", "x" * 200])
    assert result.exit_code == 1, result.output
    assert "is too long: at most 128 characters" in result.output
    assert "String should" not in result.output

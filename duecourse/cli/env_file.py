"""The connection settings `duecourse dev` runs with, written to `<data dir>/env` so the
CLI in another terminal (or directory) talks to the same Temporal server and ledger -
never to an empty ledger it made up or to another server on the default port."""

from __future__ import annotations

import os
from pathlib import Path

from duecourse.settings import Settings
from duecourse.temporal.environment import profile_address_and_namespace

ENV_FILE = "env"
KEYS = ("DUECOURSE_DATABASE_URL", "DUECOURSE_TEMPORAL_ADDRESS",
        "DUECOURSE_TEMPORAL_NAMESPACE", "DUECOURSE_TASK_QUEUE", "DUECOURSE_API_URL",
        "DUECOURSE_PAYMENT_PROVIDER")


def env_path(data_dir: Path) -> Path:
    return data_dir.expanduser().resolve() / ENV_FILE


def write_env(cfg: Settings, api_url: str | None = None) -> Path:
    """Write what this `duecourse dev` uses (an absolute ledger URL; the file may hold a
    database password, so only its owner reads it)."""
    path = env_path(cfg.data_dir)
    values = {"DUECOURSE_DATABASE_URL": cfg.ledger_url,
              "DUECOURSE_TEMPORAL_ADDRESS": cfg.temporal_address,
              "DUECOURSE_TEMPORAL_NAMESPACE": cfg.temporal_namespace,
              "DUECOURSE_TASK_QUEUE": cfg.task_queue,
              "DUECOURSE_PAYMENT_PROVIDER": cfg.payment_provider}
    if api_url:
        values["DUECOURSE_API_URL"] = api_url
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by `duecourse dev`; read by the duecourse CLI\n"
                    + "".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    path.chmod(0o600)
    return path


def read_env(path: Path) -> dict[str, str]:
    """The settings in an env file (unknown lines are ignored)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in KEYS:
            values[key.strip()] = value.strip()
    return values


def cli_settings() -> tuple[Settings, Path | None]:
    """The CLI's settings: the environment first, then the env file of the data dir
    (`DUECOURSE_DATA_DIR`, default `.duecourse`) when `duecourse dev` wrote one; which
    file was read, if any."""
    base = Settings()
    path = env_path(base.data_dir)
    if not path.is_file():
        return base, None
    values = {k: v for k, v in read_env(path).items() if k not in os.environ}
    # Temporal's own configuration (TEMPORAL_* variables or a profile) beats the env file
    own = profile_address_and_namespace()
    if "TEMPORAL_ADDRESS" in own:
        values.pop("DUECOURSE_TEMPORAL_ADDRESS", None)
    if "TEMPORAL_NAMESPACE" in own:
        values.pop("DUECOURSE_TEMPORAL_NAMESPACE", None)
    update = {name: values[key] for key, name in (
        ("DUECOURSE_DATABASE_URL", "database_url"),
        ("DUECOURSE_TEMPORAL_ADDRESS", "temporal_address"),
        ("DUECOURSE_TEMPORAL_NAMESPACE", "temporal_namespace"),
        ("DUECOURSE_TASK_QUEUE", "task_queue"),
        ("DUECOURSE_PAYMENT_PROVIDER", "payment_provider")) if key in values}
    return base.model_copy(update=update), path

"""Runtime settings from the environment, with embedded defaults that run anywhere."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUECOURSE_", extra="ignore")

    temporal_address: str = Field(
        default="localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "DUECOURSE_TEMPORAL_ADDRESS"),
        description="Temporal frontend host:port",
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "DUECOURSE_TEMPORAL_NAMESPACE"),
    )
    task_queue: str = "duecourse"
    data_dir: Path = Path(".duecourse")
    database_url: str = Field(
        default="", description="SQLAlchemy async URL; default: SQLite under data_dir"
    )
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    policy_dir: str | None = Field(default=None, description="extra policy YAML files")
    lender_name: str = "duecourse demo lender"
    lender_contact: str = "support@lender.example"
    max_concurrent_activities: int = 100
    graceful_shutdown_seconds: float = Field(
        default=30.0, ge=0, description="on SIGTERM, how long running activities may finish "
        "before the worker stops (a send mid-call is seen through and recorded)")
    metrics_address: str | None = Field(
        default=None, description="host:port where the worker serves Prometheus metrics "
        "(SDK metrics and duecourse_attention_raised/_cleared); unset: none")
    legal_partner: str = Field(default="Partner Law LLP",
                               description="who legal cases are referred to")
    legal_partner_email: str = "legal-partner@lender.example"
    webhook_allow_private: bool = Field(
        default=False, description="let webhooks reach private, loopback and link-local "
        "addresses (local development only)")
    webhook_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often the worker's webhook dispatcher "
        "looks for outbox rows other processes queued (its own wake it at once)")
    scorer: str = Field(default="duecourse.domain.scoring:scorecard",
                        description="module:function that assigns segments")
    allow_demo_policies: bool = Field(
        default=False, description="let loans start on a demonstration policy (one with a "
        "demo: block, which compresses the law's waiting periods): sandboxes only")
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="the largest request body the API reads; a "
        "larger one is answered 413 (a batch of 1000 loans is about 500 KiB)")

    # [codec] payload encryption settings
    payload_keys: SecretStr | None = Field(
        default=None, description="payload keys inline, '<key id>:<base64 key>' oldest first "
        "(commas or line breaks between keys); or use payload_key_file")
    payload_key_file: Path | None = Field(
        default=None, description="file of payload keys, one '<key id>:<base64 key>' per "
        "line, oldest first; default: <data_dir>/payload-keys when it exists")
    # [connection] Temporal connection settings
    # [metrics] metrics settings
    # [tracing] tracing settings
    # [tenancy] tenancy settings
    # [retention] retention settings

    @property
    def ledger_url(self) -> str:
        if self.database_url:
            return self.database_url
        # absolute: a ledger never depends on the directory a command runs in
        path = (self.data_dir.expanduser().resolve() / "ledger.db").as_posix()
        return f"sqlite+aiosqlite:///{path}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

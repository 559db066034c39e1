"""Runtime settings from the environment, with embedded defaults that run anywhere."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, IPvAnyNetwork, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUECOURSE_", extra="ignore")

    temporal_address: str = Field(
        default="localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "DUECOURSE_TEMPORAL_ADDRESS"),
        description="Temporal frontend host:port; TEMPORAL_ADDRESS and a TEMPORAL_PROFILE "
        "rank above DUECOURSE_TEMPORAL_ADDRESS (docs/connecting.md)",
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "DUECOURSE_TEMPORAL_NAMESPACE"),
        description="Temporal namespace, ranked like temporal_address",
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
        "(SDK metrics and the duecourse_ series of duecourse/observability/"
        "business_metrics.py); unset: none")
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
    scorer_model: Path | None = Field(
        default=None, description="the learned scorer's model file (`duecourse scorer "
        "train --out`), read when DUECOURSE_SCORER names duecourse.lab.learned_scorer")
    experiment: str | None = Field(
        default=None, description="the experiment new hand-overs are assigned under "
        "(a name in experiment_dir or the bundled duecourse/experiments); unset: none")
    experiment_dir: str | None = Field(default=None,
                                       description="extra experiment YAML files")
    costs_file: Path | None = Field(
        default=None, description="cost per contact per channel and per agent task for "
        "the analytics (YAML); default: the bundled duecourse/lab/costs.yaml")
    allow_demo_policies: bool = Field(
        default=False, description="let loans start on a demonstration policy (one with a "
        "demo: block, which compresses the law's waiting periods): sandboxes only")
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="the largest request body the API reads; a "
        "larger one is answered 413 (a batch of 1000 loans is about 500 KiB)")

    payload_keys: SecretStr | None = Field(
        default=None, description="payload keys inline, '<key id>:<base64 key>' oldest first "
        "(commas or line breaks between keys); or use payload_key_file")
    payload_key_file: Path | None = Field(
        default=None, description="file of payload keys, one '<key id>:<base64 key>' per "
        "line, oldest first; default: <data_dir>/payload-keys when it exists")
    codec_roles: str = Field(
        default="ops,supervisor,codec", description="comma-separated roles whose API keys "
        "may use the codec server (read decoded borrower data in the Temporal UI or CLI)")
    codec_cors_origins: str = Field(
        default="http://localhost:8233,http://127.0.0.1:8233", description="comma-separated "
        "browser origins (the Temporal UI's) allowed to call the codec server")
    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Temporal's environment configuration (TEMPORAL_* over a TEMPORAL_PROFILE in
        TEMPORAL_CONFIG_FILE) ranks below explicit arguments and above DUECOURSE_*, so
        temporal_address/temporal_namespace report the server actually used."""
        from duecourse.temporal.environment import TemporalProfileSource
        return (init_settings, TemporalProfileSource(settings_cls), env_settings,
                dotenv_settings, file_secret_settings)

    api_metrics: bool = Field(
        default=True, description="serve /metrics on the API (no API key, as Prometheus "
        "scrapes expect: keep it on the private network)")
    tracing: Literal["auto", "otlp", "off"] = Field(
        default="auto", description="OpenTelemetry traces: 'auto' exports them when an OTLP "
        "endpoint is set (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT), "
        "'otlp' always (default endpoint http://localhost:4318), 'off' never")
    otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                                                    "DUECOURSE_OTLP_TRACES_ENDPOINT"),
        description="full OTLP/HTTP URL spans are posted to (e.g. http://otel:4318/v1/traces)")
    otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT",
                                                    "DUECOURSE_OTLP_ENDPOINT"),
        description="OTLP/HTTP base URL; spans go to <base>/v1/traces")
    otel_service_name: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_SERVICE_NAME",
                                                    "DUECOURSE_OTEL_SERVICE_NAME"),
        description="service.name of this process's spans; default duecourse-worker, "
        "-api, -dev or -cli after the command")
    retention_years: str | None = Field(
        default=None, description="JSON object of years a closed case's records are kept "
        "after its last activity, by jurisdiction (or '*' for any other), over the "
        "defaults CN 2, US 3, GB 6; e.g. '{\"GB\": 7}' (see docs/privacy.md)")
    retention_key: SecretStr | None = Field(
        default=None, description="the pseudonymisation key(s) inline, '<key id>:<base64 of "
        "32 bytes>' oldest first (commas or line breaks between keys); or use "
        "retention_key_file")
    retention_key_file: Path | None = Field(
        default=None, description="file of pseudonymisation keys, one '<key id>:<base64>' "
        "per line, oldest first; default: <data_dir>/retention-key when it exists")
    # --- channels (issue 13): each kind routed to an adapter by one URL; unset = outbox
    email_url: SecretStr | None = Field(
        default=None, description="email over SMTP: smtp://user:pass@host:587?starttls=true"
        "&from=collections@lender.example (smtps:// for implicit TLS); unset: the outbox")
    sms_url: str | None = Field(
        default=None, description="the SMS gateway's messages endpoint, e.g. "
        "https://sms.example/v1/messages or Twilio's https://api.twilio.com; unset: outbox")
    sms_profile: Literal["generic", "twilio"] = Field(
        default="generic", description="the gateway's API shape: generic JSON or Twilio")
    sms_token: SecretStr | None = Field(
        default=None, description="the gateway's bearer token (generic) or auth token "
        "(Twilio)")
    sms_account: str | None = Field(default=None, description="Twilio's account SID")
    sms_from: str | None = Field(default=None, description="the sender number (E.164) or "
                                 "sender id")
    sms_rate: float = Field(default=10.0, gt=0, description="SMS per second, across workers")
    letter_url: str | None = Field(
        default=None, description="print-and-mail: spool:///var/spool/duecourse writes each "
        "letter's PDF to that folder; unset: the outbox")
    letter_font: str | None = Field(
        default=None, description="a .ttf/.otf/.ttc covering Chinese for letters; unset: "
        "Noto Sans SC from pylopdf-fonts-zh-cn")
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="where borrowers and providers reach "
        "the API: opt-out links, status callbacks")
    inbound_secret: SecretStr | None = Field(
        default=None, description="the secret inbound provider posts are signed with "
        "(Duecourse-Signature); unset: the inbound endpoints refuse everything")
    portal_secret: SecretStr | None = Field(
        default=None, description="the key borrower page links (/b/<token>) are signed "
        "with; or use portal_secret_file; unset: messages carry no link")
    portal_secret_file: Path | None = Field(
        default=None, description="file holding the portal key; default: "
        "<data_dir>/portal-secret when it exists (`duecourse dev` creates one)")
    portal_link_days: int = Field(default=30, ge=1, le=366, description="days a borrower "
                                  "page link stays valid after its message")
    portal_requests_per_token: int = Field(
        default=60, ge=1, description="requests one link may make in 10 minutes (counted "
        "in each API process)")
    portal_requests_per_ip: int = Field(
        default=300, ge=1, description="borrower page requests one IP address may make in "
        "10 minutes (counted in each API process; IPv6 counted per /64)")
    portal_trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list, description="proxies (CIDRs, e.g. [\"10.0.0.0/8\"]) whose "
        "X-Forwarded-For the borrower page believes: the client is the rightmost address "
        "not in these; empty: the connection's own address counts")
    email_rate: float | None = Field(default=None, gt=0, description="emails per second, "
                                     "across workers; unset: unlimited")
    voice_rate: float | None = Field(default=None, gt=0, description="calls handed to the "
                                     "dialer per second, across workers; unset: unlimited")
    letter_rate: float | None = Field(default=None, gt=0, description="letters handed to "
                                      "print-and-mail per second, across workers; unset: "
                                      "unlimited")
    voice_url: str | None = Field(
        default=None, description="the dialer's API base, e.g. https://dialer.example/v1: "
        "automated calls are POSTed to {voice_url}/calls; unset: the outbox")
    voice_token: SecretStr | None = Field(default=None, description="the dialer's bearer "
                                          "token")
    # --- payments (issue 15 item 3): the borrower's page offers to pay through one provider
    payment_provider: Literal["none", "sandbox", "stripe"] = Field(
        default="none", description="who takes borrowers' payments from their page: "
        "'sandbox' (an embedded pretend provider with its own local checkout page: "
        "development and demos only), 'stripe' (Stripe Checkout) or 'none'")
    payment_webhook_secret: SecretStr | None = Field(
        default=None, description="the secret the provider signs its webhooks with "
        "(Stripe: the endpoint's whsec_ signing secret); sandbox default: a key it keeps "
        "in <data_dir>/sandbox-pay-secret")
    payment_sandbox_allowed: bool = Field(
        default=False, description="allow the sandbox provider (it takes no money) while "
        "public_url is not a loopback address (localhost, 127.0.0.1, ::1): a shared demo")
    stripe_api_key: SecretStr | None = Field(default=None, description="Stripe's secret "
                                             "API key (sk_...)")
    stripe_api_base: str | None = Field(
        default=None, description="Stripe's API base URL; unset: https://api.stripe.com")

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

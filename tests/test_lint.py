"""The codebase stays ruff-clean and workflow code stays deterministic."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "."], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


NONDETERMINISTIC = re.compile(
    r"datetime\.(now|utcnow|today)\(|date\.today\(|time\.(time|monotonic|perf_counter)\(|"
    r"time\.sleep\(|\brandom\.|import random|uuid\.uuid[14]\(|uuid4\(\)|asyncio\.sleep\(|"
    r"structlog|sqlalchemy|httpx|\brequests\.[a-z_]+\(|import requests|os\.environ|"
    r"getenv\(|\.read_(text|bytes)\(|(?<![.\w])open\(|(?<![.\w])hash\(")
"""Clocks, randomness, I/O and logging that must never run inside a workflow."""


def test_workflow_and_domain_code_avoid_nondeterminism() -> None:
    """`duecourse/domain` runs inside workflows too, so the same rules apply to it."""
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for folder in (ROOT / "workflows", ROOT / "duecourse" / "domain")
                 for path in folder.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if NONDETERMINISTIC.search(line) and not line.lstrip().startswith("#")]
    assert offenders == []


def test_the_determinism_lint_catches_what_it_should() -> None:
    for line in ("now = datetime.now(UTC)", "x = random.random()", "key = uuid.uuid4()",
                 "engine = sqlalchemy.create_engine(url)", "data = Path(p).read_text()",
                 "token = os.environ['X']", "with open(path) as f:", "time.sleep(1)",
                 "bucket = hash(name) % 8"):
        assert NONDETERMINISTIC.search(line), line
    assert not NONDETERMINISTIC.search('"""What agents agree: plans and their requests."""')


def test_domain_imports_nothing_with_side_effects() -> None:
    banned = re.compile(r"^\s*(from|import)\s+(temporalio|sqlalchemy|structlog|duecourse\."
                        r"(store|channels|temporal|cli|settings))\b")
    offenders = [f"{path.relative_to(ROOT)}:{n}"
                 for path in (ROOT / "duecourse" / "domain").rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if banned.search(line)]
    assert offenders == []

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


def test_workflow_code_avoids_nondeterminism() -> None:
    banned = re.compile(r"datetime\.(now|utcnow|today)\(|date\.today\(|time\.time\(|"
                        r"time\.sleep\(|random\.|uuid\.uuid[14]\(|asyncio\.sleep\(|"
                        r"structlog|sqlalchemy|httpx|requests\.|(?<![.\w])open\(")
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in (ROOT / "workflows").rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if banned.search(line) and not line.lstrip().startswith("#")]
    assert offenders == []


def test_domain_imports_nothing_with_side_effects() -> None:
    banned = re.compile(r"^\s*(from|import)\s+(temporalio|sqlalchemy|structlog|duecourse\."
                        r"(store|channels|temporal|cli|settings))\b")
    offenders = [f"{path.relative_to(ROOT)}:{n}"
                 for path in (ROOT / "duecourse" / "domain").rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if banned.search(line)]
    assert offenders == []

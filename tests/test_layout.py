"""Imports point one way and the wheel installs one name: `duecourse`.

The top-level `worker.py` and `starter.py` are entry points of a checkout; the package must
never import them (nor `workflows`/`activities` under their folder names), and installing
the wheel must not put generic module names into site-packages.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL_SCRIPTS = {"worker", "starter", "workflows", "activities"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_installed_code_never_imports_the_top_level_scripts() -> None:
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {', '.join(sorted(found))}"
        for folder in ("duecourse", "workflows", "activities", "tests", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if (found := imported_roots(path) & TOP_LEVEL_SCRIPTS))
    assert offenders == []


def test_the_import_check_sees_a_top_level_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import starter\nfrom workflows.collection import X\nfrom . import y\n")
    assert imported_roots(module) == {"starter", "workflows"}


def test_the_wheel_installs_only_duecourse(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: an in-tree build would leave build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("duecourse", "workflows", "activities"):
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path), str(source)], check=True,
                   capture_output=True)
    (wheel,) = tmp_path.glob("duecourse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"duecourse"}
    for module in ("duecourse/workflows/collection.py", "duecourse/activities/messaging.py",
                   "duecourse/runtime.py", "duecourse/handover.py",
                   "duecourse/policies/standard.yaml",
                   "duecourse/store/migrations/versions/0001_initial_ledger_schema.py"):
        assert module in names

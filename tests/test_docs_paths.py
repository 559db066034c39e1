"""The docs name only files and modules that exist: every repository path (`duecourse/...`,
`tests/...`, `workflows/...`) and every `duecourse.` module or attribute written in
backticks in README.md, CONTRIBUTING.md and docs/*.md - so a move or a rename that
forgets the docs fails here instead of sending a reader to nothing."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

ROOTS = ("duecourse/", "tests/", "benchmarks/", "docs/", "workflows/", "activities/",
         "examples/", "deploy/", ".ci/")
"""Where a token is a path from the repository's root (`templates/x.yaml` is not: it would
be read as a top-level folder that does not exist, so write `duecourse/templates/x.yaml`)."""

RELATIVE_FILE = re.compile(r"[\w-]+/[\w./*-]*\.\w+")
"""A file named from somewhere other than the root (`domain/rules.py`): always a finding."""
OUTSIDE = ("shared/",)
"""The design bundle the project was built from: named by the docs, not in this repository."""

CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def _tokens(text: str) -> set[str]:
    """The words of every code span and fenced block, without the punctuation around them
    or what follows a call's parenthesis."""
    words = {w for span in CODE.findall(text) for w in span.strip("`").split()}
    return {w.split("(")[0].strip("\"',;:)[]") for w in words}


def _defines(path: Path, name: str) -> bool:
    return re.search(rf"^\s*(?:async def|def|class) {name}\b|^{name}\b.*=", path.read_text(
        encoding="utf-8"), re.M) is not None


def _path_exists(token: str, root: Path) -> bool:
    """A file or folder; a glob that matches something; `file.py::test_x` or
    `tests/factories.daytime_zone` (a module's name) where the file defines it."""
    token, _, test = token.partition("::")
    if any(c in token for c in "*?"):
        return any(root.glob(token))
    if (root / token).exists():
        return not test or _defines(root / token, test)
    base, dot, name = token.rpartition(".")
    module = root / f"{base}.py"
    return bool(dot) and IDENTIFIER.fullmatch(name) is not None and module.is_file() \
        and _defines(module, name)


def _module_exists(token: str) -> bool:
    """`duecourse.a.b` (a module), `duecourse.a.b.name` or `duecourse.a.b:name`."""
    parts = token.replace(":", ".").split(".")
    if not all(IDENTIFIER.fullmatch(p) for p in parts):
        return True  # not a dotted name (a file such as duecourse.egg-info)
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            value: object = importlib.import_module(name)
            for attribute in parts[cut:]:
                if not hasattr(value, attribute):
                    return False
                value = getattr(value, attribute)
            return True
    return False


def _names_nothing(token: str, root: Path) -> bool:
    if token.startswith(ROOTS):
        return not _path_exists(token, root)
    if RELATIVE_FILE.fullmatch(token):
        return not token.startswith(OUTSIDE)
    return token.startswith("duecourse.") and not _module_exists(token.rstrip("."))


def missing(text: str, root: Path = ROOT) -> list[str]:
    """What `text` names in backticks that is not in the repository at `root`."""
    return [token for token in sorted(_tokens(text)) if _names_nothing(token, root)]


def test_the_docs_name_only_paths_and_modules_that_exist() -> None:
    found = {doc.name: missing(doc.read_text(encoding="utf-8")) for doc in DOCS}
    assert {name: names for name, names in found.items() if names} == {}


def test_a_missing_path_or_module_is_caught(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "factories.py").write_text("def daytime_zone():\n    pass\n")
    (tmp_path / "tests" / "test_x.py").write_text("def test_one():\n    pass\n")
    text = ("Run `pytest tests/test_x.py::test_one` and `tests/test_x.py::test_two`; see\n"
            "`tests/factories.daytime_zone`, `tests/factories.night`, `tests/*.py`,\n"
            "`tests/*.rs`, `duecourse.domain.policy.Policy(...)`, `duecourse.domain.gone`,\n"
            "`duecourse.domain.policy.Gone`, `duecourse.domain.scoring:scorecard`,\n"
            "`templates/banned.yaml`, `shared/design/architecture.md`, `Asia/Shanghai`.\n"
            "```\ntests/        the tests\nworkflows/    moved away\n```\n")
    assert missing(text, tmp_path) == [
        "duecourse.domain.gone", "duecourse.domain.policy.Gone", "templates/banned.yaml",
        "tests/*.rs", "tests/factories.night", "tests/test_x.py::test_two", "workflows/"]

"""Names defined once: one `Role` enum, and each id pattern only in `duecourse.domain.ids`.

A second role vocabulary or a copied pattern drifts from the first sooner or later (an id
one layer takes and another refuses), so the source is scanned for them; each scan is
checked against planted source first, so it cannot pass by finding nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from duecourse.domain import ids
from duecourse.domain.actor import Role

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for folder in ("duecourse", "workflows", "activities")
           for p in sorted((ROOT / folder).rglob("*.py")) if "migrations" not in p.parts]
IDS_MODULE = ROOT / "duecourse" / "domain" / "ids.py"
ACTOR_MODULE = ROOT / "duecourse" / "domain" / "actor.py"
ROLE_NAMES = {r.value for r in Role}
PATTERNS = {name: value for name, value in vars(ids).items() if name.endswith("_PATTERN")}
ID_START = re.compile(re.escape("[A-Za-z0-9][A-Za-z0-9"))
"""How every id pattern begins: a new one written out by hand begins so too."""


def _strings(node: ast.Tuple | ast.List | ast.Set) -> list[str]:
    return [e.value for e in node.elts
            if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def role_vocabularies(source: str) -> list[str]:
    """Enums and string collections that spell out two or more role names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name.endswith("Role"):
            found.append(f"class {node.name}")
        elif isinstance(node, ast.ClassDef):
            values = {s.value.value for s in node.body if isinstance(s, ast.Assign)
                      and isinstance(s.value, ast.Constant)}
            if len(values & ROLE_NAMES) >= 2:
                found.append(f"class {node.name}")
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and \
                len(set(_strings(node)) & ROLE_NAMES) >= 2:  # a Literal's too
            found.append(f"role names at line {node.lineno}")
    return found


def written_patterns(source: str) -> list[str]:
    """Id patterns (and every pattern `ids` defines) written out instead of imported."""
    bodies = {value.strip("^$") for value in PATTERNS.values()}
    found = [body for body in bodies if body in source]
    return found + [m.group(0) for m in ID_START.finditer(source)
                    if not any(source.startswith(b, m.start()) for b in bodies)]


def test_the_scans_find_what_they_look_for() -> None:
    assert role_vocabularies('class Role(StrEnum):\n    AGENT = "agent"\n')
    assert role_vocabularies('class Kind(StrEnum):\n    A = "agent"\n    O = "ops"\n')
    assert role_vocabularies('R = Literal["platform", "ops"]\n')
    assert role_vocabularies('ROLES = ("platform", "agent", "supervisor", "ops")\n')
    assert not role_vocabularies('x = ("agent", "borrower")\nclass Y:\n    A = "ops"\n')
    assert written_patterns('P = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"\n')
    assert written_patterns('KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")\n')
    assert written_patterns('NEW = r"^[A-Za-z0-9][A-Za-z0-9_]{0,9}$"\n')
    assert written_patterns(f'P = "{ids.PRODUCT_PATTERN}"\n')
    assert not written_patterns("P = ids.PLATFORM_ID_PATTERN\n")


def test_one_role_enum() -> None:
    found = {str(p.relative_to(ROOT)): hits for p in SOURCES if p != ACTOR_MODULE
             if (hits := role_vocabularies(p.read_text()))}
    assert not found, f"roles are duecourse.domain.actor.Role; also spelled out in {found}"


def test_each_id_pattern_is_defined_once() -> None:
    found = {str(p.relative_to(ROOT)): hits for p in SOURCES if p != IDS_MODULE
             if (hits := written_patterns(p.read_text()))}
    assert not found, f"import the pattern from duecourse.domain.ids instead: {found}"
    assert len(set(PATTERNS.values())) == len(PATTERNS), "two names for one pattern"

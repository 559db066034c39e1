"""docs/compliance-rules.md stays true to the code: every pack parameter is in it, and
every test it names as covering a rule exists."""

from __future__ import annotations

import re
from pathlib import Path

from duecourse.domain.compliance.packs import RulePack

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "compliance-rules.md").read_text(encoding="utf-8")


def test_the_rule_table_names_every_pack_parameter() -> None:
    missing = [name for name in RulePack.model_fields
               if name not in ("jurisdiction", "title", "references")
               and f"`{name}`" not in DOC]
    assert missing == []


def test_the_rule_table_names_only_tests_that_exist() -> None:
    defined = {m for f in (ROOT / "tests").glob("test_*.py")
               for m in re.findall(r"^(?:async )?def (test_\w+)", f.read_text(encoding="utf-8"),
                                   re.MULTILINE)}
    named = set(re.findall(r"`(test_\w+)`", DOC))
    assert named and sorted(named - defined) == []

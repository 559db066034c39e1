"""Policy registry: the built-in YAML policies plus any in `DUECOURSE_POLICY_DIR`.

Loaded outside workflows (starter, CLI); the resolved policy travels inside the workflow
input, so workflow code never reads files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from duecourse.domain.policy import Policy

BUILTIN_DIR = Path(__file__).parent


class UnknownPolicy(LookupError):
    """Raised when a loan names a policy that no policy directory provides."""


def _dirs(extra_dir: str | Path | None) -> list[Path]:
    return [Path(extra_dir), BUILTIN_DIR] if extra_dir else [BUILTIN_DIR]


def available_policies(extra_dir: str | Path | None = None) -> list[str]:
    names = {p.stem for d in _dirs(extra_dir) if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def load_policy_file(path: str | Path) -> Policy:
    """Parse and validate one policy file, naming the file in any error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Policy.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"invalid policy file {path}: {exc}") from exc


@lru_cache(maxsize=64)
def load_policy(name: str, extra_dir: str | None = None) -> Policy:
    """The policy called `name`; a file in `extra_dir` overrides a built-in one."""
    for directory in _dirs(extra_dir):
        candidate = directory / f"{name}.yaml"
        if candidate.is_file():
            policy = load_policy_file(candidate)
            if policy.name != name:
                raise ValueError(f"{candidate} declares name {policy.name!r}, expected {name!r}")
            return policy
    raise UnknownPolicy(
        f"unknown policy {name!r}; available: {', '.join(available_policies(extra_dir))}"
    )

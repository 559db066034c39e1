"""Message templates: loaded once from YAML, rendered strictly.

Rendering fails loudly (TemplateError) on an unknown template, language-less template or
missing placeholder, so a broken template is found on the first send, not by a borrower.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from string import Formatter

import yaml
from pydantic import BaseModel

DEFAULT_FILE = Path(__file__).parent / "messages.yaml"


class TemplateError(ValueError):
    """A template is missing, malformed or lacks a value it needs."""


class Rendered(BaseModel):
    template: str
    language: str
    subject: str | None
    body: str


@lru_cache(maxsize=8)
def load_templates(path: Path = DEFAULT_FILE) -> dict[str, dict[str, dict[str, str]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: expected a mapping of template names")
    return data


def _fill(text: str, values: dict[str, str], where: str) -> str:
    for _, field, spec, conversion in Formatter().parse(text):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise TemplateError(f"{where}: only plain {{name}} placeholders are allowed, "
                                f"got {{{field}}}")
        if field not in values:
            raise TemplateError(f"{where}: no value for placeholder {{{field}}}")
    return text.format_map(values)


def pick_language(available: list[str], wanted: str) -> str | None:
    """Exact tag, then same base language, then English."""
    base = wanted.split("-")[0].lower()
    for candidate in (wanted, *[a for a in available if a.split("-")[0].lower() == base], "en"):
        if candidate in available:
            return candidate
    return None


def render(name: str, language: str, values: dict[str, str],
           path: Path = DEFAULT_FILE) -> Rendered:
    variants = load_templates(path).get(name)
    if not variants:
        raise TemplateError(f"unknown template {name!r}")
    chosen = pick_language(list(variants), language)
    if chosen is None:
        raise TemplateError(f"template {name!r} has no {language} or en text")
    variant = variants[chosen]
    where = f"template {name}[{chosen}]"
    subject = variant.get("subject")
    return Rendered(template=name, language=chosen,
                    subject=_fill(subject, values, where) if subject else None,
                    body=_fill(variant["body"], values, where))

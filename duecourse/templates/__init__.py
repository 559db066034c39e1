"""Message templates: loaded once from YAML, rendered strictly, linted for banned wording.

Rendering fails loudly (TemplateError) on an unknown template, a missing language or a
missing placeholder, so a broken template is found on the first send, not by a borrower.
Every template declares its audience (borrower, agent, partner) and the channels it is
written for, and rendering refuses any other use: an agent's call script never reaches a
borrower, a letter never goes out as an SMS.
Each jurisdiction's required wording (jurisdictions.yaml: the US debt-collector disclosure
and opt-out lines, UK debt-advice signposting, CN complaint line) is appended on render,
so no template can forget it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from string import Formatter

import yaml
from pydantic import BaseModel

HERE = Path(__file__).parent
DEFAULT_FILE = HERE / "messages.yaml"
JURISDICTIONS_FILE = HERE / "jurisdictions.yaml"
BANNED_FILE = HERE / "banned.yaml"


class TemplateError(ValueError):
    """A template is missing, malformed, lacks a value it needs, or is used for the wrong
    audience or channel."""


AUDIENCES = ("borrower", "agent", "partner")
META_KEYS = ("audience", "channels", "mentions_legal_action")
"""Keys of a template entry that are not languages."""


class TemplateInfo(BaseModel):
    name: str
    audience: str
    channels: list[str]
    languages: list[str]
    mentions_legal_action: bool = False  # never sent on a time-barred debt

    def written_for(self, channel: str, audience: str = "borrower") -> bool:
        return self.audience == audience and channel in self.channels


class Rendered(BaseModel):
    template: str
    language: str
    subject: str | None
    body: str
    required: list[str] = []  # names of the jurisdiction wording appended


class LintProblem(BaseModel):
    where: str
    phrase: str
    rule: str


@lru_cache(maxsize=8)
def _yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: expected a mapping")
    return data


def load_templates(path: Path = DEFAULT_FILE) -> dict[str, dict[str, dict[str, str]]]:
    """Template name -> language -> {subject, body} (the declared metadata left out)."""
    return {name: {k: v for k, v in entry.items() if k not in META_KEYS}
            for name, entry in _yaml(path).items()}


def template_info(name: str, path: Path = DEFAULT_FILE) -> TemplateInfo:
    """Who a template is for and the channels it is written for; TemplateError for an
    unknown or undeclared one."""
    entry = _yaml(path).get(name)
    if not entry:
        raise TemplateError(f"unknown template {name!r}")
    audience, channels = entry.get("audience"), entry.get("channels")
    if audience not in AUDIENCES or not isinstance(channels, list) or not channels:
        raise TemplateError(f"template {name!r} must declare its audience (one of "
                            f"{', '.join(AUDIENCES)}) and the channels it is written for")
    return TemplateInfo(name=name, audience=audience, channels=[str(c) for c in channels],
                        languages=[k for k in entry if k not in META_KEYS],
                        mentions_legal_action=bool(entry.get("mentions_legal_action")))


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


def required_wording(jurisdiction: str, language: str, channel: str,
                     path: Path = JURISDICTIONS_FILE) -> dict[str, str]:
    """The wording `jurisdiction` requires on `channel`, in the nearest language."""
    country = jurisdiction.split("-")[0].upper()
    variants = _yaml(path).get(country) or {}
    chosen = pick_language(list(variants), language)
    if chosen is None:
        return {}
    return {name: spec["text"] for name, spec in variants[chosen].items()
            if channel in spec.get("channels", [])}


def render(name: str, language: str, values: dict[str, str], *, jurisdiction: str = "",
           channel: str = "", audience: str = "borrower", time_barred: bool = False,
           path: Path = DEFAULT_FILE) -> Rendered:
    """`name` in the nearest language, for `audience` on `channel` (when given); never a
    template that mentions legal action on a `time_barred` debt (no threat of suit)."""
    info = template_info(name, path)
    if time_barred and info.mentions_legal_action:
        raise TemplateError(f"template {name!r} mentions legal action, and the debt is "
                            "time-barred: it is never threatened with suit")
    if info.audience != audience:
        raise TemplateError(f"template {name!r} is written for the {info.audience}, not "
                            f"for the {audience}: it is never sent to a {audience}")
    if channel and channel not in info.channels:
        raise TemplateError(f"template {name!r} is written for {', '.join(info.channels)}, "
                            f"not for {channel}")
    variants = load_templates(path)[name]
    chosen = pick_language(list(variants), language)
    if chosen is None:
        raise TemplateError(f"template {name!r} has no {language} or en text")
    variant = variants[chosen]
    where = f"template {name}[{chosen}]"
    subject = variant.get("subject")
    body = _fill(variant["body"], values, where)
    extra = required_wording(jurisdiction, language, channel) if jurisdiction else {}
    for wording, text in extra.items():
        body += ("\n" if channel != "sms" else " ") + _fill(text, values,
                                                             f"{jurisdiction} {wording}")
    return Rendered(template=name, language=chosen,
                    subject=_fill(subject, values, where) if subject else None,
                    body=body, required=list(extra))


def lint_text(text: str, language: str, where: str,
              path: Path = BANNED_FILE) -> list[LintProblem]:
    rules = _yaml(path).get(language.split("-")[0].lower(), [])
    problems = []
    for rule in rules:
        match = re.search(rule["pattern"], text, flags=re.IGNORECASE)
        if match:
            problems.append(LintProblem(where=where, phrase=match.group(0), rule=rule["rule"]))
    return problems


def lint_templates(path: Path = DEFAULT_FILE,
                   jurisdictions: Path = JURISDICTIONS_FILE) -> list[LintProblem]:
    """Every banned phrase in every template and required wording, with its rule."""
    problems: list[LintProblem] = []
    for name, variants in load_templates(path).items():
        declared = bool(_yaml(path)[name].get("mentions_legal_action"))
        for language, variant in variants.items():
            for field in ("subject", "body"):
                if variant.get(field):
                    where = f"{name}[{language}].{field}"
                    problems += lint_text(variant[field], language, where)
                    if not declared:
                        problems += _undeclared_legal_action(variant[field], where)
    for country, languages in _yaml(jurisdictions).items():
        for language, wordings in languages.items():
            for wording, spec in wordings.items():
                problems += lint_text(spec["text"], language,
                                      f"{country} {wording}[{language}]")
    return problems


LEGAL_ACTION = re.compile(
    r"(?i)\b(legal (partner|action|proceedings|steps)|court|su(e|ed|ing)|lawsuit|"
    r"litigation|solicitors?|attorneys?|bailiffs?|"
    r"formal (recovery|demand|proceedings|action)|"
    r"(recovery|enforcement) (proceedings|action)|enforcement agents?)\b|"
    r"律师|诉讼|起诉|法院|仲裁|追偿|催告函|正式催告|强制执行|法律(程序|手段|途径|行动|责任)")
"""Wording that speaks of taking the borrower to law, or of the formal steps towards it (a
formal demand, formal recovery, enforcement): a template using it declares
`mentions_legal_action`, so it is never rendered on a time-barred debt (12 CFR 1006.26(b):
no suit or threat of suit). Plain "further steps" or "further charges" do not count."""


def _undeclared_legal_action(text: str, where: str) -> list[LintProblem]:
    found = LEGAL_ACTION.search(text)
    if found is None:
        return []
    return [LintProblem(where=where, phrase=found.group(0),
                        rule="speaks of legal action: declare `mentions_legal_action: true` "
                             "so it is never sent on a time-barred debt (12 CFR 1006.26(b))")]

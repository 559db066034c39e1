"""Policy registry: the built-in YAML policies plus any in `DUECOURSE_POLICY_DIR`.

Loaded outside workflows (starter, CLI); the resolved policy travels inside the workflow
input, so workflow code never reads files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from duecourse.domain.policy import Channel, ContactStep, Policy
from duecourse.templates import TemplateError, template_info

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
        return with_templates(Policy.model_validate(data))
    except (yaml.YAMLError, ValidationError, TemplateError) as exc:
        raise ValueError(f"invalid policy file {path}: {exc}") from exc


def resolve_step(step: ContactStep, fallbacks: list[Channel]) -> ContactStep:
    """Check `step`'s templates against the catalogue and fill in the borrower template it
    sends on each fallback channel: its own template where that is written for the
    channel, else the one the policy names in `templates`. A channel with neither is
    left out, so the step never falls back to it. The channels whose template speaks of
    legal action are marked (`legal_action_channels`): the workflow, which reads no
    files, never uses them on a time-barred debt."""
    info = template_info(step.template)
    if step.as_task:
        if info.audience != "agent":
            raise TemplateError(f"step {step.name} is a task for an agent, so its template "
                                f"{step.template!r} must be an agent script, not for the "
                                f"{info.audience}")
        return step.model_copy(update={"legal_action_channels": (
            [step.channel] if info.mentions_legal_action else [])})
    if not info.written_for(step.channel):
        raise TemplateError(f"step {step.name} sends {step.template!r} to the borrower on "
                            f"{step.channel}, but that template is written for the "
                            f"{info.audience} on {', '.join(info.channels)}")
    templates = dict(step.templates)
    for channel, name in templates.items():
        if not template_info(name).written_for(channel):
            raise TemplateError(f"step {step.name} falls back to {name!r} on {channel}, but "
                                "that is not a borrower template written for it")
    for channel in fallbacks:
        if channel not in templates and info.written_for(channel):
            templates[channel] = step.template
    uses = {step.channel: step.template, **templates}
    legal = [channel for channel, name in uses.items()
             if template_info(name).mentions_legal_action]
    return step.model_copy(update={"templates": templates, "legal_action_channels": legal})


def with_templates(policy: Policy) -> Policy:
    """The policy with every step's per-channel templates resolved (see resolve_step)."""
    def steps(items: list[ContactStep]) -> list[ContactStep]:
        return [resolve_step(s, policy.channel_fallbacks.get(s.channel, [])) for s in items]

    demand = policy.legal.demand_letter
    return policy.model_copy(update={
        "reminder": policy.reminder.model_copy(update={"steps": steps(policy.reminder.steps)}),
        "negotiation": policy.negotiation.model_copy(
            update={"steps": steps(policy.negotiation.steps)}),
        "legal": policy.legal.model_copy(update={"demand_letter": resolve_step(
            demand, policy.channel_fallbacks.get(demand.channel, []))})})


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

"""Champion/challenger experiments (issue 14): which strategy a loan is collected on.

An experiment file (`experiments/NAME.yaml`) names a champion arm and challenger arms,
each a policy with a share of new hand-overs. `Experiment.assign` maps a loan to an arm by
a stable hash of the experiment's name and the loan id, so the live hand-over and the
simulator assign every loan alike, on any machine, with no state. Loans already assigned
keep their arm (the ledger records it, `duecourse.lab.assignments`): re-weighting or
stopping an experiment only changes where new loans go.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from duecourse.domain.ids import PolicyName
from duecourse.plain_words import plain_message

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "experiments"
"""The bundled experiment files (duecourse/experiments)."""

HASH_SCALE = 1 << 64
"""The hash's first 8 bytes, read as a fraction of this, place a loan in [0, 1)."""


class ExperimentError(ValueError):
    """An experiment file that cannot be used; the message is one sentence naming the
    file and the field."""


class Arm(BaseModel):
    """One strategy of the experiment: the policy its loans are collected on and the share
    of new hand-overs it gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PolicyName = Field(description="the strategy's name, recorded on the case and as "
                             "the Strategy search attribute (such as champion)")
    policy: PolicyName = Field(description="the policy its loans run on (such as standard)")
    share: Decimal = Field(ge=0, le=1, description="its share of new hand-overs, 0 to 1")


class Experiment(BaseModel):
    """A champion and its challengers; their shares sum to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PolicyName = Field(description="part of every loan's hash: renaming an experiment "
                             "reassigns new loans")
    description: str = ""
    champion: Arm
    challengers: list[Arm] = Field(min_length=1)
    status: Literal["running", "stopped"] = Field(
        default="running", description="stopped: new loans get the champion; loans "
        "already assigned keep their arm")

    @model_validator(mode="after")
    def _arms_make_sense(self) -> Experiment:
        names = [arm.name for arm in self.arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"each arm needs its own name, but {', '.join(repeated)} names "
                             "more than one arm")
        total = sum((arm.share for arm in self.arms), Decimal(0))
        if total != 1:
            parts = ", ".join(f"{where} {arm.share}" for where, arm in self.placed_arms())
            raise ValueError(f"the shares must sum to 1, but they sum to {total} ({parts})")
        return self

    @property
    def arms(self) -> list[Arm]:
        """Every arm, champion first: the order `assign` lays the shares out in."""
        return [self.champion, *self.challengers]

    def placed_arms(self) -> list[tuple[str, Arm]]:
        """Each arm with the place it has in the file (`challengers[0].share`)."""
        return [("champion.share", self.champion)] + [
            (f"challengers[{i}].share", arm) for i, arm in enumerate(self.challengers)]

    def arm(self, name: str) -> Arm | None:
        return next((arm for arm in self.arms if arm.name == name), None)

    def assign(self, loan_id: str) -> Arm:
        """The arm a new loan gets: the champion while stopped, else the arm whose slice
        of [0, 1) (cumulative shares in arm order) holds the loan's hash point. Pure: the
        same loan and experiment give the same arm everywhere."""
        if self.status == "stopped":
            return self.champion
        point, upto = hash_point(self.name, loan_id), Fraction(0)
        for arm in self.arms:
            upto += Fraction(arm.share)
            if point < upto:
                return arm
        raise AssertionError("shares sum to 1, so some arm holds every point")  # unreachable


def hash_point(experiment: str, loan_id: str) -> Fraction:
    """Where the loan falls in [0, 1) for this experiment: sha256 of
    `"{experiment}:{loan_id}"`, its first 8 bytes over 2**64 (exact, no float)."""
    digest = hashlib.sha256(f"{experiment}:{loan_id}".encode()).digest()
    return Fraction(int.from_bytes(digest[:8], "big"), HASH_SCALE)


# --------------------------------------------------------------------------- loading
def available_experiments(experiment_dir: str | Path | None = None) -> list[str]:
    dirs = [Path(experiment_dir)] if experiment_dir else []
    return sorted({p.stem for d in [*dirs, BUILTIN_DIR] if d.is_dir()
                   for p in d.glob("*.yaml")})


def names_a_file(name_or_path: str) -> bool:
    """A path (`experiments/ab.yaml`, `./ab`) rather than an experiment's name."""
    given = Path(name_or_path)
    return given.suffix in (".yaml", ".yml") or len(given.parts) > 1 or given.is_file()


def experiment_path(name_or_path: str, experiment_dir: str | Path | None = None) -> Path:
    """The file a name stands for (experiment_dir first, then the bundled ones), or the
    path itself when it names a file."""
    if names_a_file(name_or_path):
        if not Path(name_or_path).is_file():
            raise ExperimentError(f"there is no experiment file {name_or_path}.")
        return Path(name_or_path)
    for directory in [Path(experiment_dir)] if experiment_dir else []:
        if (directory / f"{name_or_path}.yaml").is_file():
            return directory / f"{name_or_path}.yaml"
    if (BUILTIN_DIR / f"{name_or_path}.yaml").is_file():
        return BUILTIN_DIR / f"{name_or_path}.yaml"
    known = ", ".join(available_experiments(experiment_dir)) or "none"
    raise ExperimentError(f"there is no experiment called {name_or_path!r} (available: "
                          f"{known}).")


def load_experiment(name_or_path: str, experiment_dir: str | None = None, *,
                    policy_dir: str | None = None) -> Experiment:
    """The experiment a name (experiment_dir, then the bundled files) or a path stands
    for, checked: known fields only, shares 0..1 summing to 1, unique arm names, and every
    policy loadable (from policy_dir, else the bundled policies only). A name must match the
    file's `name:` (it is hashed: a copied file must not silently share assignments)."""
    path = experiment_path(name_or_path, experiment_dir)
    experiment = parse_experiment(path)
    if path.stem != experiment.name and not names_a_file(name_or_path):
        raise ExperimentError(f"{path}: name is {experiment.name!r}, but the file is "
                              f"{path.name}; name it {path.stem!r} or rename the file.")
    check_policies(experiment, path, policy_dir)
    return experiment


def parse_experiment(path: Path) -> Experiment:
    """The file's experiment, validated; errors as one sentence naming file and field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ExperimentError(f"cannot read {path}: {err.strerror or err}.") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ExperimentError(f"{path} is not valid YAML{at}.") from None
    if not isinstance(data, dict):
        raise ExperimentError(f"{path} must hold a mapping with name, champion and "
                              "challengers.")
    try:
        return Experiment.model_validate(data)
    except ValidationError as err:
        raise ExperimentError(f"{path}: {error_sentence(err)}") from None


def error_sentence(err: ValidationError) -> str:
    """The first problem of a validation error as a sentence naming its field; an unknown
    field first, since a misspelt one (`shares`) also leaves its field missing."""
    errors = sorted(err.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    first: dict[str, Any] = dict(errors[0])
    field = field_name(first.get("loc", ()))
    kind = str(first.get("type", ""))
    if kind == "extra_forbidden":
        arm = field.startswith(("champion.", "challengers["))
        sentence = (f"{field} is not a field of {'an arm' if arm else 'an experiment file'} "
                    f"(the fields are {', '.join((Arm if arm else Experiment).model_fields)})")
    elif field.endswith("share") and kind.startswith("decimal"):
        sentence = f"{field} must be a number from 0 to 1, such as 0.5"
    elif not field:
        sentence = str(first.get("ctx", {}).get("error", first.get("msg", "")))
    else:
        ctx = {**first.get("ctx", {}), "input": first.get("input")}
        sentence = plain_message(field, kind, ctx, str(first.get("msg", "")))
    more = len(errors) - 1
    return sentence.rstrip(".") + (f" (and {more} more problem{'s' * (more > 1)})."
                                   if more else ".")


def field_name(loc: Any) -> str:
    """A pydantic location as the YAML path people read: `challengers[0].share`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_policies(experiment: Experiment, path: Path, policy_dir: str | None) -> None:
    """Every arm's policy loads, so no hand-over meets an unknown policy mid-batch."""
    from duecourse.policies import UnknownPolicy, available_policies, load_policy

    places = [("champion", experiment.champion)] + [
        (f"challengers[{i}]", arm) for i, arm in enumerate(experiment.challengers)]
    for where, arm in places:
        try:
            load_policy(arm.policy, policy_dir)
        except UnknownPolicy:
            raise ExperimentError(
                f"{path}: {where}.policy names {arm.policy!r}, which is not a policy "
                f"(available: {', '.join(available_policies(policy_dir))}).") from None
        except ValueError as err:
            raise ExperimentError(f"{path}: {where}.policy {arm.policy!r} cannot be "
                                  f"loaded: {err}") from None

"""The learned scorer: logistic models fitted on the ledger's own outcomes (`duecourse
scorer train`), applied here by plain arithmetic - scoring needs neither scikit-learn nor
a pickle, and the model is a JSON file anyone can read.

Select it with `DUECOURSE_SCORER=duecourse.lab.learned_scorer:learned` and name the model
in `DUECOURSE_SCORER_MODEL`. Every score says which three facts moved the chance of cure
most (coefficient x standardised value), in plain words, and why the segment follows."""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from duecourse.domain.policy import Segment
from duecourse.domain.scoring import ScoreInput, ScoreResult
from duecourse.intake import format_validation_error
from duecourse.settings import Settings

SCHEMA = "duecourse.learned-scorer/1"
FEATURES = ("days_past_due", "outstanding_ratio", "payments", "paid_amount_ratio",
            "promises_kept", "promises_broken", "plans_broken", "conversations", "refusals",
            "failed_attempts_in_a_row", "invalid_contact", "disputed")
"""The ScoreInput facts the models weigh, in the order of every vector in the file."""

REASONS = 3


class ScorerModelError(ValueError):
    """The model file is not set, missing or not a model: a setting to fix, so the
    scoring activity does not retry it (a ValueError is a scorer bug, not an outage)."""


class Target(BaseModel):
    """One fitted logistic model over the standardised features."""

    model_config = ConfigDict(extra="forbid")

    coefficients: list[float]
    intercept: float
    rows: int = Field(ge=0, description="training rows (observations)")
    positives: int = Field(ge=0, description="rows where the target happened")
    auc: float | None = Field(default=None, description="on the held-out cases, each "
                              "case weighing the same (None: they were all of one kind)")


class Cutoffs(BaseModel):
    """Probabilities at which the segments change (edit the file to move them)."""

    model_config = ConfigDict(extra="forbid")

    self_cure: float = Field(default=0.75, ge=0, le=1,
                             description="cure probability from which a loan is SELF_CURE")
    willing: float = Field(default=0.5, ge=0, le=1, description="willingness from which "
                           "a loan not likely to cure alone is CANT_PAY (else WONT_PAY)")
    able: float = Field(default=0.5, ge=0, le=1, description="ability from which an "
                        "unwilling loan is WONT_PAY (able, unwilling; below: CANT_PAY)")
    wont_pay: float = Field(default=0.25, ge=0, le=1, description="without a willingness "
                            "model: cure probability below which a loan is WONT_PAY")


class LearnedModel(BaseModel):
    """What `duecourse scorer train --out` writes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["duecourse.learned-scorer/1"] = Field(default=SCHEMA, alias="schema")
    features: list[str]
    means: list[float]
    scales: list[float]
    cure: Target = Field(description="closed PAID or SETTLED within horizon_days")
    willingness: Target | None = Field(
        default=None, description="paid, promised or agreed a plan or settlement after "
        "the observation (None: the ledger did not have both kinds)")
    ability: Target | None = Field(
        default=None, description="where a payment followed: paid in full (PAID) rather "
        "than part (None: the ledger did not have both kinds)")
    cutoffs: Cutoffs = Field(default_factory=Cutoffs)
    trained_at: AwareDatetime
    horizon_days: int = Field(ge=1, description="cure counts within this many days of "
                              "hand-over")
    rows: int = Field(ge=1)
    cases: int = Field(ge=1)
    held_out_cases: int = Field(ge=0)
    random_state: int
    source: str = Field(description="the ledger it learned from (no password)")

    @model_validator(mode="after")
    def _shapes(self) -> LearnedModel:
        if tuple(self.features) != FEATURES:
            raise ValueError(f"features must be {', '.join(FEATURES)} in that order")
        targets = {"cure": self.cure, "willingness": self.willingness,
                   "ability": self.ability}
        for name, values in (("means", self.means), ("scales", self.scales),
                             *((f"{label}.coefficients", target.coefficients)
                               for label, target in targets.items() if target)):
            if len(values) != len(FEATURES):
                raise ValueError(f"{name} has {len(values)} values, not {len(FEATURES)}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} holds a value that is not a finite number")
        if any(s <= 0 for s in self.scales):
            raise ValueError("scales must all be greater than zero")
        return self


def features_of(inp: ScoreInput) -> list[float]:
    """The facts as numbers, in FEATURES order (true = 1)."""
    return [float(getattr(inp, name)) for name in FEATURES]


def _probability(target: Target, z: list[float]) -> float:
    logit = target.intercept + sum(c * v for c, v in zip(target.coefficients, z, strict=True))
    return 1 / (1 + math.exp(-max(-500.0, min(500.0, logit))))


def _fact(name: str, value: float) -> str:
    """A feature's value in words."""
    n = int(value)
    words = {
        "days_past_due": f"{n} day(s) past due",
        "outstanding_ratio": f"{value:.0%} of the principal still owed",
        "payments": f"{n} payment(s) made",
        "paid_amount_ratio": f"{value:.0%} of the balance paid",
        "promises_kept": f"{n} promise(s) kept",
        "promises_broken": f"{n} promise(s) broken",
        "plans_broken": f"{n} plan(s) broken",
        "conversations": f"{n} conversation(s) with us",
        "refusals": f"{n} refusal(s) to pay",
        "failed_attempts_in_a_row": f"{n} failed contact attempt(s) in a row",
        "invalid_contact": "a phone number that does not work" if value
        else "no failed phone number",
        "disputed": "an open dispute" if value else "no open dispute",
    }
    return words[name]


def reasons_for(model: LearnedModel, inp: ScoreInput) -> list[tuple[str, float]]:
    """The REASONS features that moved the cure log-odds most, with their contribution."""
    x = features_of(inp)
    moved = [(name, c * (v - m) / s, v) for name, c, v, m, s in zip(
        FEATURES, model.cure.coefficients, x, model.means, model.scales, strict=True)]
    moved.sort(key=lambda item: (-abs(item[1]), FEATURES.index(item[0])))
    return [(f"{_fact(name, value)} {'raises' if effect > 0 else 'lowers'} the chance of "
             f"cure ({effect:+.2f})", effect) for name, effect, value in moved[:REASONS]
            if effect != 0]


def _unreachable(inp: ScoreInput) -> bool:
    """No way to talk to them yet (the scorecard's test): a fact, not a prediction."""
    return (inp.invalid_contact or inp.failed_attempts_in_a_row >= 3) and not inp.conversations


def _quadrant(willingness: Target, ability: Target | None, cut: Cutoffs, z: list[float],
              cure: float) -> tuple[Segment, str]:
    """Willing: CANT_PAY (help them pay); unwilling but able: WONT_PAY; unwilling and
    unable to pay in full: CANT_PAY (a plan, not consequences). Without an ability model
    every unwilling loan is WONT_PAY."""
    willing = _probability(willingness, z)
    said = f"cure chance {cure:.0%}, willingness {willing:.0%}"
    if willing >= cut.willing:
        return Segment.CANT_PAY, f"{said} (at least {cut.willing:.0%}): willing, needs " \
            "help to pay"
    if ability is None:
        return Segment.WONT_PAY, f"{said} (under {cut.willing:.0%}): unwilling"
    able = _probability(ability, z)
    said += f" (under {cut.willing:.0%}), ability {able:.0%}"
    if able >= cut.able:
        return Segment.WONT_PAY, f"{said} (at least {cut.able:.0%}): able, unwilling"
    return Segment.CANT_PAY, f"{said} (under {cut.able:.0%}): unable to pay in full, " \
        "needs a plan"


def apply_model(model: LearnedModel, inp: ScoreInput) -> ScoreResult:
    """Score `inp`: the cure probability as 0-100, a segment from the cut-offs, reasons."""
    z = [(v - m) / s for v, m, s in zip(features_of(inp), model.means, model.scales,
                                        strict=True)]
    cure, cut = _probability(model.cure, z), model.cutoffs
    reasons = [text for text, _ in reasons_for(model, inp)]
    if _unreachable(inp):  # first, as in the scorecard: nudges would not reach them
        segment = Segment.UNREACHABLE
        why = f"cure chance {cure:.0%}; unreachable: no conversation and failed contact " \
            "attempts"
    elif cure >= cut.self_cure:
        segment = Segment.SELF_CURE
        why = f"cure chance {cure:.0%} is at least {cut.self_cure:.0%}: self-cure"
    elif model.willingness is not None:
        segment, why = _quadrant(model.willingness, model.ability, cut, z, cure)
    else:
        segment = Segment.CANT_PAY if cure >= cut.wont_pay else Segment.WONT_PAY
        why = f"cure chance {cure:.0%} " + (
            f"(at least {cut.wont_pay:.0%}): can be helped to pay"
            if segment is Segment.CANT_PAY else f"(under {cut.wont_pay:.0%}): unwilling")
    return ScoreResult(segment=segment, score=round(cure * 100), reasons=[*reasons, why])


@lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> LearnedModel:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ScorerModelError(f"DUECOURSE_SCORER_MODEL names {path}, which is not JSON "
                               f"({err}): train one with `duecourse scorer train`") from None
    except OSError as err:
        raise ScorerModelError(f"DUECOURSE_SCORER_MODEL names {path}, which cannot be read "
                               f"({err.strerror or err})") from None
    try:
        return LearnedModel.model_validate(raw)
    except ValidationError as err:
        raise ScorerModelError(f"DUECOURSE_SCORER_MODEL names {path}, which is not a "
                               f"learned scorer model: {format_validation_error(err)}"
                               ) from None


def load_model(path: Path | None) -> LearnedModel:
    """The model in `path`, read once (again only when the file changes)."""
    if path is None:
        raise ScorerModelError("DUECOURSE_SCORER_MODEL is not set: the learned scorer needs "
                               "the model file `duecourse scorer train --out FILE` writes")
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise ScorerModelError(f"DUECOURSE_SCORER_MODEL names {path}, which does not exist: "
                               f"train one with `duecourse scorer train --out {path}`"
                               ) from None
    return _load(path.expanduser().resolve(), mtime)


@lru_cache(maxsize=8)
def _configured(raw: str | None) -> Path | None:
    """DUECOURSE_SCORER_MODEL as the settings read it, once per value it takes (reading
    the settings costs milliseconds; a simulation scores thousands of times a second)."""
    return Settings().scorer_model


def learned(inp: ScoreInput) -> ScoreResult:
    """The DUECOURSE_SCORER entry point: score with the model DUECOURSE_SCORER_MODEL names."""
    path = _configured(os.environ.get("DUECOURSE_SCORER_MODEL"))
    return apply_model(load_model(path), inp)

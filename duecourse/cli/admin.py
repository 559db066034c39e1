"""Operating commands: run the worker, migrate the ledger, start a file, show policies."""

from __future__ import annotations

import asyncio
import json
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from duecourse import handover
from duecourse.cli.common import console, ledger, run, safe_url, settings, user_errors
from duecourse.domain.compliance.packs import (
    DEFAULT,
    PACKS,
    PARAMETERS,
    RulePack,
    departures,
)
from duecourse.domain.policy import ContactHours, Policy
from duecourse.logs import configure_logging
from duecourse.policies import available_policies, load_policy
from duecourse.runtime import run_worker

PolicyDir = Annotated[str | None, typer.Option(
    help="directory with extra policy YAML files (default: DUECOURSE_POLICY_DIR)")]


def worker(migrate: Annotated[bool, typer.Option(
        "--migrate/--no-migrate", help="bring the ledger schema up to date first")] = True,
           ) -> None:
    """Run the worker (workflows and activities) until Ctrl-C or SIGTERM."""
    cfg = settings()
    configure_logging(cfg.log_format, cfg.log_level)
    run(run_worker(cfg, run_migrations=migrate))


db = typer.Typer(help="Ledger database.", no_args_is_help=True)


@db.command()
def upgrade() -> None:
    """Migrate the ledger at DUECOURSE_DATABASE_URL (or the data dir) to the latest schema."""
    cfg = settings()

    async def go() -> None:
        async with ledger(cfg, create=True):
            pass

    run(go())
    console.print(f"Ledger at {escape(safe_url(cfg.ledger_url))} is up to date.",
                  highlight=False)


def start(file: Annotated[Path, typer.Argument(help="hand-over file, .csv or .json")],
          policy_dir: PolicyDir = None,
          concurrency: Annotated[int, typer.Option(
              min=1, max=512, help="starts in flight at once")] = handover.DEFAULT_CONCURRENCY,
          progress_every: Annotated[float, typer.Option(
              min=0.05, help="seconds between progress lines when the output is not a "
              "terminal (a log or CI)")] = handover.PROGRESS_EVERY,
          ) -> None:
    """Start collection for every loan in FILE (idempotent: running loans are kept).

    A long file is never silent: a progress bar on a terminal, else a line every few
    seconds with the counts and the rate, while the file is read and while it is started."""
    code = asyncio.run(handover.run(settings(), file, console, policy_dir=policy_dir,
                                   concurrency=concurrency, progress_every=progress_every))
    raise typer.Exit(code)


def policies(policy_dir: PolicyDir = None) -> None:
    """List the policies loans can name."""
    extra = policy_dir or settings().policy_dir
    table = Table(title="Policies", title_justify="left")
    for column in ("name", "version", "description"):
        table.add_column(column)
    for name in available_policies(extra):
        try:
            p = load_policy(name, extra)
            table.add_row(name, p.version, escape(p.description))
        except ValueError as err:
            table.add_row(name, "-", f"[red]{escape(str(err))}[/]")
    console.print(table)


def policy(name: Annotated[str, typer.Argument(help="policy name, e.g. standard")],
           as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML")]
           = False, policy_dir: PolicyDir = None) -> None:
    """Print a policy as the workflow receives it (all defaults resolved), then where it
    departs from the law: each rule-pack parameter it overrides and its contact hours,
    law vs our policy, stricter or looser (JSON: the `departures_from_law` key)."""

    with user_errors():
        loaded = load_policy(name, policy_dir or settings().policy_dir)
    data = loaded.model_dump(mode="json")
    found = departures_from_law(loaded)
    if as_json:
        typer.echo(json.dumps({**data, "departures_from_law": found}, indent=2,
                              ensure_ascii=False))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
        typer.echo("\n".join(f"# {line}".rstrip() for line in _departure_lines(found)))



def _rule_of(parameter: str) -> str:
    known = PARAMETERS.get(parameter)
    return known.rule if known else parameter


def departures_from_law(p: Policy) -> dict[str, dict[str, Any]]:
    """Per jurisdiction (each pack, any other country the policy names, and `*` for the
    default pack): every parameter the policy's `compliance` overrides, and its
    `contact_hours` where they differ from the pack's - law vs our policy."""
    named = [j for j in p.compliance if j != "*" and j.split("-")[0].upper() not in PACKS]
    out: dict[str, dict[str, Any]] = {}
    for jurisdiction in [*PACKS, *named, "*"]:
        law = PACKS.get(jurisdiction.split("-")[0].upper(), DEFAULT)
        found = [{**{k: _plain(v) for k, v in d.items()}, "source": "compliance",
                  "reference": law.ref(_rule_of(d["parameter"]))}
                 for d in departures(jurisdiction, p.compliance)]
        hours = _hours_departure(law, p.contact_hours)
        if hours is not None:
            found.append(hours)
        if found:
            out[jurisdiction] = {"pack": law.title, "departures": found}
    return out


_POINTS = 2 * 24 * 3600
"""Points of a day: 2s is the instant s seconds after midnight, 2s+1 the second after it
(so an end-inclusive window holds one point more than an end-exclusive one)."""


def _spans(hours: ContactHours | None) -> list[tuple[int, int]]:
    if hours is None:
        return [(0, _POINTS)]

    def point(t: time) -> int:
        return 2 * (t.hour * 3600 + t.minute * 60 + t.second)

    start, end = point(hours.start), point(hours.end) + (1 if hours.end_inclusive else 0)
    return [(start, end)] if start < end else [(start, _POINTS), (0, end)]


def _within(inner: list[tuple[int, int]], outer: list[tuple[int, int]]) -> bool:
    return all(any(a <= x and y <= b for a, b in outer) for x, y in inner)


def _hours_departure(law: RulePack, ours: ContactHours | None) -> dict[str, Any] | None:
    """The policy's contact hours against the pack's (the engine applies both: only hours
    both allow are used), or None when they are the same."""
    law_spans, our_spans = _spans(law.contact_hours), _spans(ours)
    if sorted(law_spans) == sorted(our_spans):
        return None
    if _within(our_spans, law_spans):
        direction = "stricter"
    elif _within(law_spans, our_spans):
        direction = "looser"
    else:
        direction = "different"
    entry = {"parameter": "contact_hours", "law": _plain(law.contact_hours),
             "policy": _plain(ours), "direction": direction, "source": "contact_hours",
             "reference": law.ref("hours")}
    if direction != "stricter":
        entry["note"] = "the pack's hours still apply: a contact needs both to allow it"
    return entry


def _plain(value: Any) -> Any:
    """`value` as JSON data: durations as days, models as their JSON form."""
    if isinstance(value, timedelta):
        if value.seconds or value.microseconds:
            return str(value)
        return "1 day" if value.days == 1 else f"{value.days} days"
    if isinstance(value, ContactHours):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _shown(value: Any) -> str:
    """A law or policy value as one short phrase."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict) and {"start", "end"} <= value.keys():
        span = f"{value['start'][:5]}-{value['end'][:5]}"
        return span + (f" ({value['end'][:5]} itself allowed)" if value.get("end_inclusive")
                       else f" (until {value['end'][:5]})")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_shown(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value) or "none"
    return str(value)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and not {"start", "end"} <= value.keys()


def _departure_lines(found: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["", "Where this policy departs from the law",
             "(law: the rule pack's value; our policy: this policy's choice)"]
    if not found:
        return [*lines, "", "nowhere: every pack applies as the law has it"]
    for jurisdiction, pack in found.items():
        label = "* (every other country)" if jurisdiction == "*" else jurisdiction
        lines += ["", f"{label} - {pack['pack']}"]
        for d in pack["departures"]:
            what = ("contact hours (the policy's contact_hours)"
                    if d["source"] == "contact_hours" else d["parameter"])
            law, ours = d["law"], d["policy"]
            if d["source"] == "contact_hours" and ours is None:
                ours = "no hours of its own"
            if _is_table(law) and _is_table(ours):  # per region: only what differs
                changed = sorted(k for k in {*law, *ours} if law.get(k) != ours.get(k))
                law, ours = ({k: t.get(k) for k in changed} for t in (law, ours))
            lines.append(f"  {what}: law {_shown(law)}, our policy {_shown(ours)} - "
                         f"{d['direction']}")
            lines.append(f"    {d['reference']}")
            if "note" in d:
                lines.append(f"    ({d['note']})")
    return lines

"""Retention: pseudonymise the personal data of closed cases kept past their period.

A case is due when it is closed, no case of its loan is open, and its jurisdiction's
period has run from its last activity (its close, or the latest fact recorded for it,
whichever is later). Each due case is pseudonymised in one transaction (duecourse.store.
scrub), recorded in `pseudonymised_cases` (when, by which run, which columns); the loans
row and the loan's inbound rows (replies, receipts, unreachable marks, consents) go with
the loan's last case. Replies and receipts matched to no loan (an unknown sender, a
message we do not know) have no jurisdiction: they are pseudonymised once the longest
period has run from their arrival. A recorded case is never touched again, and a
pseudonym is never pseudonymised again, so a second run changes nothing. Audit rows stay
(their summaries and data pseudonymised: the append-only triggers allow exactly that, and
only inside such a transaction).
"""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import String, Table, cast, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duecourse.domain.ids import JURISDICTION_PATTERN
from duecourse.store import tables as t
from duecourse.store.pseudonyms import PSEUDONYM, PseudonymKeys
from duecourse.store.scrub import (
    CASE_COLUMNS,
    KEYED_COLUMNS,
    LOAN_COLUMNS,
    LOAN_KEYED_COLUMNS,
    WHOLE,
    Scrubber,
)

DEFAULT_YEARS = {"CN": 2, "US": 3, "GB": 6}
"""CN: bank card rules keep collection records at least 2 years; US: Reg F keeps records
3 years after the last collection activity; GB: no fixed rule, 6 years is the Limitation
Act 1980 period for simple contract debts (a claim about the collection can come that
long). `*` in the setting covers every other jurisdiction."""

MINIMUM_YEARS = {"CN": 2, "US": 3}
"""What the law requires: a setting may keep records longer, never shorter."""

SETTING = "DUECOURSE_RETENTION_YEARS"

KEYS: dict[str, tuple[str, ...]] = {
    "tasks": ("task_id",), "agreements": ("case_id", "agreement_id"),
    "collection_cases": ("case_id",), "loans": ("loan_id",)}
"""How each table's rows are named in an update (the rest: `id`)."""


class RetentionError(ValueError):
    """A retention setting or request that cannot be used, said in one sentence."""


def retention_periods(text: str | None) -> dict[str, int]:
    """The defaults with the setting's overrides (a JSON object of whole years)."""
    periods = dict(DEFAULT_YEARS)
    if not text or not text.strip():
        return periods
    try:
        given = json.loads(text)
    except ValueError:
        given = None
    if not isinstance(given, dict):
        raise RetentionError(f"{SETTING} must be a JSON object of years by jurisdiction, "
                             'such as {"GB": 7}')
    for raw, years in given.items():
        code = str(raw).strip().upper()
        if code != "*" and not re.match(JURISDICTION_PATTERN, code):
            raise RetentionError(f"{SETTING} names {raw!r}, which is not a jurisdiction "
                                 "(an ISO 3166 code such as GB or US-CA, or * for any other)")
        if isinstance(years, bool) or not isinstance(years, int) or not 1 <= years <= 100:
            raise RetentionError(f"{SETTING} gives {raw} {years!r}: use a whole number of "
                                 "years from 1 to 100")
        minimum = MINIMUM_YEARS.get(code[:2], 0)
        if years < minimum:
            raise RetentionError(f"{SETTING} keeps {code} records {years} year"
                                 f"{'s' * (years != 1)}, less than the {minimum} its law "
                                 "requires")
        periods[code] = years
    return periods


def years_for(periods: dict[str, int], jurisdiction: str) -> int | None:
    """The period for `jurisdiction` (exact, then its country, then `*`), or None."""
    code = jurisdiction.upper()
    for candidate in (code, code[:2], "*"):
        if candidate in periods:
            return periods[candidate]
    return None


def add_years(day: date, years: int) -> date:
    """`years` later; 29 February becomes 1 March (never earlier than the law's end)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


@dataclass
class RunSummary:
    """What a run did (or, dry, would do): counts only, never a personal value."""

    run_id: str
    as_of: date
    dry_run: bool
    pseudonymised: int = 0
    loans_completed: int = 0
    values_replaced: int = 0
    already_done: int = 0
    open_cases: int = 0
    loan_still_open: int = 0
    within_period: int = 0
    unmatched: int = 0  # replies and receipts of no loan, past the longest period
    no_period: Counter[str] = field(default_factory=Counter)
    cases: list[str] = field(default_factory=list)  # ids of the cases (to be) pseudonymised


@dataclass(frozen=True)
class _Case:
    case_id: str
    loan_id: str
    jurisdiction: str
    years: int
    last_activity: datetime


async def run_retention(engine: AsyncEngine, keys: PseudonymKeys | None, periods: dict[str, int],
                        as_of: date, dry_run: bool = False) -> RunSummary:
    """Pseudonymise every case due on `as_of` (a dry run only counts; it needs no key)."""
    if not dry_run and keys is None:
        raise RetentionError("a retention run needs the pseudonymisation key")
    summary = RunSummary(f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
                         as_of, dry_run)
    for case in await _due(engine, periods, as_of, summary):
        summary.cases.append(case.case_id)
        if dry_run:
            summary.pseudonymised += 1
            continue
        assert keys is not None
        async with engine.begin() as conn:
            done = await _pseudonymise(conn, case, keys, summary.run_id)
        if done is None:  # opened again, or done by another run meanwhile
            summary.cases.pop()
            continue
        summary.pseudonymised += 1
        summary.values_replaced += done[0]
        summary.loans_completed += done[1]
    if periods:
        summary.unmatched = await _unmatched(engine, keys, max(periods.values()), as_of,
                                             dry_run)
    return summary


UNMATCHED_COLUMNS: dict[str, dict[str, str]] = {
    "inbound_replies": {"sender": WHOLE, "text": WHOLE, "answer_error": WHOLE},
    "delivery_receipts": {"error": WHOLE, "dedup_key": WHOLE},
}
"""Of a row that names no loan, every column that can hold personal data, replaced whole:
there is no borrower whose values could be found inside the text, so none is kept."""


async def _unmatched(engine: AsyncEngine, keys: PseudonymKeys | None, years: int,
                     as_of: date, dry_run: bool) -> int:
    """Pseudonymise the replies and receipts of no loan that arrived `years` before
    `as_of`; how many rows changed (or, dry, would)."""
    cutoff = datetime.combine(add_years(as_of, -years), datetime.min.time(), UTC)
    count = 0
    async with engine.begin() as conn:
        for name, columns in UNMATCHED_COLUMNS.items():
            table = t.metadata.tables[name]
            for row in await _rows(conn, table, table.c.loan_id.is_(None)
                                   & (table.c.received_at < cutoff)):
                stale = [c for c in columns if _personal(row[c])]
                if not stale:
                    continue
                count += 1
                if not dry_run:
                    assert keys is not None
                    scrubber = Scrubber(keys)
                    await conn.execute(update(table).where(table.c.id == row["id"]).values(
                        {c: scrubber.apply(columns[c], row[c]) for c in stale}))
    return count


def _personal(value: Any) -> bool:
    """Text that may hold personal data: not empty, not already a pseudonym."""
    return isinstance(value, str) and any(ch.isalnum() for ch in value) \
        and not PSEUDONYM.fullmatch(value)


async def _due(engine: AsyncEngine, periods: dict[str, int], as_of: date,
               summary: RunSummary) -> list[_Case]:
    c, a, p = t.collection_cases, t.audit_events, t.pseudonymised_cases
    async with engine.connect() as conn:
        cases = (await conn.execute(
            select(c.c.case_id, c.c.loan_id, c.c.outcome, c.c.closed_at, t.loans.c.jurisdiction)
            .join(t.loans, t.loans.c.loan_id == c.c.loan_id)
            .order_by(c.c.closed_at, c.c.case_id))).all()
        latest = dict((await conn.execute(
            select(a.c.case_id, func.max(a.c.occurred_at)).group_by(a.c.case_id))).all())
        done = set((await conn.execute(select(p.c.case_id))).scalars())
    open_loans = {row.loan_id for row in cases if row.outcome is None}
    due = []
    for row in cases:
        if row.case_id in done:
            summary.already_done += 1
        elif row.outcome is None or row.closed_at is None:
            summary.open_cases += 1
        elif row.loan_id in open_loans:
            summary.loan_still_open += 1
        elif (years := years_for(periods, row.jurisdiction)) is None:
            summary.no_period[row.jurisdiction] += 1
        else:
            last = max(row.closed_at, latest.get(row.case_id) or row.closed_at)
            if add_years(last.astimezone(UTC).date(), years) > as_of:
                summary.within_period += 1
            else:
                due.append(_Case(row.case_id, row.loan_id, row.jurisdiction, years, last))
    return due


async def _rows(conn: AsyncConnection, table: Table, where: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in (await conn.execute(select(table).where(where))).mappings()]


async def _hand_over_marks(conn: AsyncConnection, loan_id: str) -> None:
    """An unreachable mark whose address another loan still sends to (or holds on file)
    moves to that loan, so retention here does not make the address usable there again."""
    u, a = t.unreachable_addresses, t.contact_attempts
    for mark in (await conn.execute(select(u.c.id, u.c.address).where(
            u.c.loan_id == loan_id))).all():
        other = (await conn.execute(select(a.c.loan_id).where(
            a.c.recipient == mark.address, a.c.loan_id != loan_id)
            .order_by(a.c.id.desc()).limit(1))).scalar() or (await conn.execute(
            select(t.loans.c.loan_id).where(  # on file, not yet contacted there
                cast(t.loans.c.borrower, String).contains(mark.address, autoescape=True),
                t.loans.c.loan_id != loan_id).limit(1))).scalar()
        if other is not None:
            await conn.execute(update(u).where(u.c.id == mark.id).values(loan_id=other))


async def _pseudonymise(conn: AsyncConnection, case: _Case, keys: PseudonymKeys,
                        run_id: str) -> tuple[int, int] | None:
    """Pseudonymise one case inside `conn`'s transaction: (values replaced, 1 if the loan
    row went too), or None when the case is no longer due."""
    c, p = t.collection_cases, t.pseudonymised_cases
    siblings = select(c.c.case_id, c.c.outcome).where(c.c.loan_id == case.loan_id)
    if conn.dialect.name == "postgresql":
        siblings = siblings.with_for_update()
    loan_cases = (await conn.execute(siblings)).all()
    finished = set((await conn.execute(
        select(p.c.case_id).where(p.c.loan_id == case.loan_id))).scalars())
    if case.case_id in finished or any(row.outcome is None for row in loan_cases):
        return None
    now = datetime.now(UTC)
    # the open row is what lets the audit triggers accept this case's pseudonymisation
    await conn.execute(insert(p).values(
        case_id=case.case_id, loan_id=case.loan_id, run_id=run_id, key_id=keys.newest_id,
        jurisdiction=case.jurisdiction, retention_years=case.years,
        last_activity_at=case.last_activity, started_at=now, columns=[], values_replaced=0))
    work: list[tuple[Table, dict[str, str], list[dict[str, Any]]]] = []
    for name, columns in CASE_COLUMNS.items():
        table = t.metadata.tables[name]
        work.append((table, columns, await _rows(conn, table, table.c.case_id == case.case_id)))
    for name, (key, columns) in KEYED_COLUMNS.items():
        table = t.metadata.tables[name]
        work.append((table, columns, await _rows(
            conn, table, table.c[key].startswith(f"{case.case_id}:", autoescape=True))))
    last_of_loan = finished | {case.case_id} >= {row.case_id for row in loan_cases}
    loan_rows = await _rows(conn, t.loans, t.loans.c.loan_id == case.loan_id)
    scrubber = Scrubber(keys)
    for row in loan_rows:  # the borrower's own values are known in every case
        for column, how in LOAN_COLUMNS.items():
            scrubber.learn(how, row[column])
    if last_of_loan:
        work.append((t.loans, LOAN_COLUMNS, loan_rows))
        await _hand_over_marks(conn, case.loan_id)
        for name, columns in LOAN_KEYED_COLUMNS.items():
            table = t.metadata.tables[name]
            work.append((table, columns, await _rows(
                conn, table, table.c.loan_id == case.loan_id)))
    for _, columns, rows in work:
        for row in rows:
            for column, how in columns.items():
                scrubber.learn(how, row[column])
    changed: set[str] = set()
    replaced = 0
    for table, columns, rows in work:
        for row in rows:
            values = {}
            for column, how in columns.items():
                new = scrubber.apply(how, row[column], getattr(table.c[column].type, "length",
                                                               None))
                if new != row[column]:
                    values[column] = new
            if values:
                names = KEYS.get(table.name, ("id",))
                await conn.execute(update(table).where(
                    *(table.c[k] == row[k] for k in names)).values(values))
                changed |= {f"{table.name}.{column}" for column in values}
                replaced += len(values)
    await conn.execute(update(p).where(p.c.case_id == case.case_id).values(
        columns=sorted(changed), values_replaced=replaced, completed_at=datetime.now(UTC)))
    return replaced, int(last_of_loan)

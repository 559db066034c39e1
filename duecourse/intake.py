"""Reading hand-over files (CSV or JSON) into validated loans, one verdict per row.

A hand-over file is the platform's batch of overdue loans. One bad row must never hide
the others, so every row gets its own result: a `LoanIntake` or a precise error naming
the field (`borrower.phones.0: malformed phone number ...`). Only problems with the file
as a whole (unreadable, unknown format, broken JSON, bad CSV header) raise.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from duecourse.domain.calendar import TimeZoneError, local_date
from duecourse.domain.loan import MAX_OTHER_ZONES, Borrower, LoanIntake
from duecourse.domain.policy import Policy
from duecourse.phone_zones import other_zones
from duecourse.policies import load_policy

BORROWER_COLUMNS = {"borrower_id": "borrower_id", "borrower_name": "name", "phones": "phones",
                    "email": "email", "address": "address", "timezone": "timezone",
                    "other_timezones": "other_timezones", "language": "language"}
"""Flat column -> Borrower field."""

LOAN_COLUMNS = ("loan_id", "jurisdiction", "currency", "principal", "outstanding", "due_date",
                "last_payment_date", "product", "policy")
DAYS_PAST_DUE = "days_past_due"
FLAT_COLUMNS = ("loan_id", *BORROWER_COLUMNS, *LOAN_COLUMNS[1:], DAYS_PAST_DUE)
REQUIRED_COLUMNS = ("loan_id", "borrower_id", "borrower_name", "timezone", "jurisdiction",
                    "currency", "principal", "outstanding")
MAX_DEBT_AGE_YEARS = 30
"""A due date further back than this is refused as a typo: no limitation period is longer."""
LIST_SEPARATOR = ";"  # several phones or zones in one CSV cell


class IntakeFileError(ValueError):
    """The file as a whole cannot be read (missing, unknown format, malformed JSON/header)."""


class RowRejected(ValueError):
    """A row that cannot be started; the message is the reason shown to the operator."""


@dataclass(frozen=True)
class Malformed:
    """A record the file format itself could not produce (e.g. a CSV row of wrong width)."""

    reason: str


@dataclass(frozen=True)
class IntakeRow:
    """One data row's verdict: `loan` when valid, else `error`."""

    row: int  # 1-based data row number (the header is not counted)
    loan: LoanIntake | None
    error: str | None
    loan_id: str | None  # best effort, so even a rejected row can be named

    @property
    def ok(self) -> bool:
        return self.loan is not None


# --------------------------------------------------------------------------- files
def read_intake_file(path: str | Path, now: datetime) -> list[IntakeRow]:
    """Parse a `.csv` or `.json` hand-over file; `now` resolves `days_past_due` rows."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise IntakeFileError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; use .csv or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate the BOM spreadsheets write
    except UnicodeDecodeError as err:
        raise IntakeFileError(f"{path}: not UTF-8 text ({err.reason} at byte "
                              f"{err.start})") from None
    except OSError as err:
        raise IntakeFileError(f"cannot read {path}: {err.strerror or err}") from None
    records = _csv_records(text, path) if suffix == ".csv" else _json_records(text, path)
    return parse_records(records, now)


def parse_records(records: Iterable[tuple[int, Any]], now: datetime) -> list[IntakeRow]:
    """Validate `(row number, record)` pairs; a record is a mapping (or `Malformed`)."""
    return [_parse(row, record, now) for row, record in records]


def _csv_records(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise IntakeFileError(f"{path}: empty file, expected a header row") from None
    except csv.Error as err:
        raise IntakeFileError(f"{path}: malformed header row: {err}") from None
    columns = _check_header([c.strip().lower() for c in header], path)
    row = 0
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:  # the reader resumes on the next line
            yield row, Malformed(f"malformed CSV row: {err}")
            continue
        if not any(c.strip() for c in cells):
            continue  # blank line; counted so row numbers match a spreadsheet's
        if len(cells) != len(columns):
            yield row, Malformed(f"malformed CSV row: {len(cells)} cells but the header "
                                 f"has {len(columns)} columns")
            continue
        yield row, dict(zip(columns, cells, strict=True))


def _check_header(columns: list[str], path: Path) -> list[str]:
    unknown = [c for c in columns if c not in FLAT_COLUMNS]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if "due_date" not in columns and DAYS_PAST_DUE not in columns:
        missing.append("due_date or days_past_due")
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
    if duplicated:
        problems.append(f"duplicated column(s) {', '.join(map(repr, duplicated))}")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if problems:
        raise IntakeFileError(f"{path}: bad header: {'; '.join(problems)}. Expected columns: "
                              f"{', '.join(FLAT_COLUMNS)}")
    return columns


def _json_records(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(text, parse_float=Decimal)  # money never passes through float
    except json.JSONDecodeError as err:
        raise IntakeFileError(f"{path}: invalid JSON at line {err.lineno} column "
                              f"{err.colno}: {err.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("loans"), list):
        data = data["loans"]
    if not isinstance(data, list):
        raise IntakeFileError(f"{path}: expected a JSON list of loans or {{\"loans\": [...]}}")
    yield from enumerate(data, start=1)


# --------------------------------------------------------------------------- rows
def _parse(row: int, record: Any, now: datetime) -> IntakeRow:
    loan_id = _loan_id(record)
    if isinstance(record, Malformed):
        return IntakeRow(row=row, loan=None, error=record.reason, loan_id=None)
    if not isinstance(record, Mapping):
        return IntakeRow(row=row, loan=None, loan_id=None,
                         error=f"expected an object, got {type(record).__name__}")
    try:
        data = _nest({str(k).strip(): _clean(v) for k, v in record.items() if _given(v)}, now)
        loan = with_phone_zones(LoanIntake.model_validate(data))
        _dates_make_sense(loan, now)
    except RowRejected as err:
        return IntakeRow(row=row, loan=None, error=str(err), loan_id=loan_id)
    except ValidationError as err:
        return IntakeRow(row=row, loan=None, error=format_validation_error(err),
                         loan_id=loan_id)
    return IntakeRow(row=row, loan=loan, error=None, loan_id=loan.loan_id)


def _dates_make_sense(loan: LoanIntake, now: datetime) -> None:
    """A due date decades ago is a typo (0001-01-01), and a last payment after today would
    start the limitation period in the future."""
    paid, today = loan.last_payment_date, local_date(now, loan.borrower.timezone)
    if loan.due_date.year < today.year - MAX_DEBT_AGE_YEARS:
        raise RowRejected(f"due_date {loan.due_date} is more than {MAX_DEBT_AGE_YEARS} "
                          "years ago: check the date")
    if paid is not None and paid > today:
        raise RowRejected(f"last_payment_date {paid} is in the future (it is {today} in "
                          f"{loan.borrower.timezone})")


def with_phone_zones(loan: LoanIntake) -> LoanIntake:
    """The loan with every zone its borrower's phones say they may be in (area codes in
    other zones), besides the ones the platform gave."""
    b = loan.borrower
    zones = other_zones(b.timezone, b.phones, b.other_timezones)[:MAX_OTHER_ZONES]
    if zones == b.other_timezones:
        return loan
    return loan.model_copy(update={"borrower": b.model_copy(update={"other_timezones": zones})})


def _given(value: Any) -> bool:
    """Empty cells, blank strings and nulls mean "not given": defaults apply."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _clean(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _loan_id(record: Any) -> str | None:
    value = record.get("loan_id") if isinstance(record, Mapping) else None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


def _nest(record: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Flat CSV-style or nested LoanIntake-style record -> LoanIntake input."""
    flat = [c for c in BORROWER_COLUMNS if c in record]
    nested = record.get("borrower")
    if nested is not None and flat:
        raise RowRejected(f"give the borrower either as a nested 'borrower' object or as "
                          f"flat columns, not both (found {', '.join(flat)})")
    unknown = [k for k in record if k not in (*FLAT_COLUMNS, "borrower")]
    if unknown:
        raise RowRejected(f"unknown field(s) {', '.join(map(repr, unknown))}")
    if nested is None:
        nested = {BORROWER_COLUMNS[c]: record[c] for c in flat}
    elif not isinstance(nested, Mapping):
        raise RowRejected(f"borrower: expected an object, got {type(nested).__name__}")
    else:
        extra = [k for k in nested if k not in Borrower.model_fields]
        if extra:
            raise RowRejected(f"borrower: unknown field(s) {', '.join(map(repr, extra))}")
        nested = {k: v for k, v in nested.items() if _given(v)}
    for listed in ("phones", "other_timezones"):  # CSV: several values in one cell
        value = nested.get(listed)
        if isinstance(value, str):
            nested = {**nested, listed: [v.strip() for v in value.split(LIST_SEPARATOR)
                                         if v.strip()]}
    data = {k: record[k] for k in LOAN_COLUMNS if k in record}
    data["borrower"] = nested
    if DAYS_PAST_DUE in record:
        if "due_date" in record:
            raise RowRejected("give either due_date or days_past_due, not both")
        data["due_date"] = _due_from_dpd(record[DAYS_PAST_DUE], nested.get("timezone"), now)
    return data


def _due_from_dpd(value: Any, tz: Any, now: datetime) -> date:
    """The due date that makes the loan `value` days past due today, borrower-local."""
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise RowRejected(f"days_past_due: expected a whole number of days >= 1, got {value!r}")
    try:
        today = local_date(now, tz) if isinstance(tz, str) else now.astimezone(UTC).date()
    except TimeZoneError:
        # The time zone's own error is reported by validation; any date will do here.
        today = now.astimezone(UTC).date()
    return today - timedelta(days=int(text))


def format_validation_error(err: ValidationError) -> str:
    """`field.path: message` per problem, joined by `; ` (no pydantic boilerplate)."""
    parts = []
    for e in err.errors(include_url=False):
        message = e["msg"].removeprefix("Value error, ")
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


# --------------------------------------------------------------------------- starting
def validate_for_start(row: IntakeRow, now: datetime,
                       policy_dir: str | Path | None = None,
                       allow_demo: bool = False) -> tuple[LoanIntake, Policy]:
    """The loan and its policy, if the row may start collection now; else RowRejected.

    The workflow refuses a loan that is not overdue too, but checking here gives the
    operator a row-numbered reason instead of a failed workflow. A demonstration policy
    (one with a `demo:` block, like the bundled `demo`) compresses the law's waiting periods
    and contact hours: it starts a loan only where `allow_demo` says this is a sandbox.
    """
    if row.loan is None:
        raise RowRejected(row.error or "invalid row")
    loan = row.loan
    try:
        loan.ensure_overdue(now)
        policy = load_policy(loan.policy, str(policy_dir) if policy_dir else None)
    except (ValueError, LookupError) as err:  # LoanNotOverdue, UnknownPolicy, bad policy
        raise RowRejected(str(err)) from err
    if policy.demo is not None and not allow_demo:
        raise RowRejected(
            f"policy {policy.name} is for demonstrations only: it compresses days to seconds "
            "and the law's waiting periods and contact hours (its demo block), so it may "
            "not start real loans; `duecourse dev --demo` uses it, and a sandbox may set "
            "DUECOURSE_ALLOW_DEMO_POLICIES=true")
    return loan, policy


def with_policy(rows: Iterable[IntakeRow], policy: str) -> list[IntakeRow]:
    """The same rows with every valid loan's policy replaced (`duecourse dev --demo`)."""
    return [replace(r, loan=r.loan.model_copy(update={"policy": policy})) if r.loan else r
            for r in rows]

"""Hand-over files: CSV and JSON, flat and nested, and one precise verdict per row."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from duecourse.intake import (
    FLAT_COLUMNS,
    IntakeFileError,
    IntakeRow,
    RowRejected,
    read_intake_file,
    validate_for_start,
    with_policy,
)

# 23:30 UTC: already the next day in Shanghai, still the same day in New York.
NOW = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
DEMO_FILE = Path(__file__).resolve().parent.parent / "duecourse" / "demo" / "loans.csv"


def flat(loan_id: str = "L-1", **overrides: str) -> dict[str, str]:
    row = {"loan_id": loan_id, "borrower_id": f"B-{loan_id}", "borrower_name": "Li Wei",
           "phones": "+8613800138000", "email": "li.wei@example.com", "address": "",
           "timezone": "Asia/Shanghai", "language": "zh-CN", "jurisdiction": "CN",
           "currency": "CNY", "principal": "5000.00", "outstanding": "1250.50",
           "due_date": "2026-03-01", "product": "", "policy": ""}
    row.update(overrides)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or [c for c in FLAT_COLUMNS if any(c in r for r in rows)]
    lines = [",".join(columns)]
    for r in rows:
        lines.append(",".join(_cell(r.get(c, "")) for c in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cell(value: str) -> str:
    return f'"{value}"' if "," in value else value


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def by_row(rows: list[IntakeRow]) -> dict[int, IntakeRow]:
    return {r.row: r for r in rows}


# --------------------------------------------------------------------------- CSV
def test_csv_flat_row_becomes_a_loan_with_defaults(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv", [
        flat("L-1", phones="+8613800138000; +86 21 6123 4567", address="1 Nanjing Road, Shanghai")])
    [row] = read_intake_file(path, NOW)
    assert row.error is None and row.row == 1 and row.loan_id == "L-1"
    loan = row.loan
    assert loan is not None
    assert loan.borrower.name == "Li Wei"
    assert loan.borrower.phones == ["+8613800138000", "+862161234567"]
    assert loan.borrower.address == "1 Nanjing Road, Shanghai"
    assert loan.outstanding == Decimal("1250.50") and isinstance(loan.principal, Decimal)
    assert loan.due_date == date(2026, 3, 1)
    assert (loan.product, loan.policy) == ("instalment", "standard")  # empty cell = default


def test_csv_carries_the_other_zones_and_the_last_payment(tmp_path: Path) -> None:
    """Reg F asks for hours that suit every zone the borrower may be in; the last payment
    may start the limitation period."""
    path = write_csv(tmp_path / "loans.csv", [flat(
        "L-2", timezone="America/New_York", jurisdiction="US-NY", currency="USD",
        phones="+12127363100", other_timezones="America/Los_Angeles; America/Chicago",
        last_payment_date="2026-02-10")])
    [row] = read_intake_file(path, NOW)
    assert row.loan is not None, row.error
    assert row.loan.borrower.other_timezones == ["America/Los_Angeles", "America/Chicago"]
    assert row.loan.last_payment_date == date(2026, 2, 10)
    [phoned] = read_intake_file(write_csv(tmp_path / "phones.csv", [flat(
        "L-4", timezone="America/New_York", jurisdiction="US-NY", currency="USD",
        phones="+12127363100; +12136210002; +18005550199")]), NOW)
    assert phoned.loan is not None, phoned.error
    assert phoned.loan.borrower.other_timezones == ["America/Los_Angeles"], \
        "a Los Angeles area code: the borrower may be there (comment 6(b)(1)(i)-1); a " \
        "toll-free number says nothing of where they are"
    [future] = read_intake_file(write_csv(tmp_path / "future.csv", [flat(
        "L-5", last_payment_date="2099-01-01")]), NOW)
    assert future.error is not None and "in the future" in future.error
    [bad] = read_intake_file(write_csv(tmp_path / "bad.csv", [flat(
        "L-3", other_timezones="Mars/Olympus")]), NOW)
    assert bad.error is not None and "Mars/Olympus" in bad.error


def test_absurd_amounts_and_dates_are_refused_row_by_row(tmp_path: Path) -> None:
    """`1e400` or 30 digits used to crash the whole file with decimal.InvalidOperation,
    and 0001-01-01 was accepted as a due date."""
    path = write_csv(tmp_path / "loans.csv", [
        flat("L-1", principal="1e400"), flat("L-2", outstanding="1" * 30),
        flat("L-3", due_date="0001-01-01"), flat("L-4")])
    rows = by_row(read_intake_file(path, NOW))
    assert "principal is too large" in (rows[1].error or "")
    assert "outstanding is too large" in (rows[2].error or "")
    assert "more than 30 years ago" in (rows[3].error or "")
    assert rows[4].loan is not None, "the good row still parses"


def test_csv_bad_rows_get_precise_errors_while_good_rows_parse(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv", [
        flat("L-1"),
        flat("L-2", phones="123"),
        flat("L-3", currency="XXX"),
        flat("L-4", timezone="Mars/Olympus"),
        flat("L-5", outstanding="-5"),
        flat("L-6"),
    ])
    rows = by_row(read_intake_file(path, NOW))
    assert [r.row for r in rows.values() if r.ok] == [1, 6]
    assert rows[2].error == ("borrower.phones.0: malformed phone number '123': expected E.164 "
                             "such as +8613800138000")
    assert rows[3].error == "currency: unknown currency 'XXX': expected an ISO 4217 code"
    assert rows[4].error is not None
    assert rows[4].error.startswith("borrower.timezone: unknown time zone 'Mars/Olympus'")
    assert rows[5].error == "outstanding: Input should be greater than 0"
    assert all(rows[n].loan_id == f"L-{n}" for n in range(1, 7))


def test_csv_several_errors_in_one_row_are_all_reported(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv", [flat("bad id!", borrower_id="B-1", phones="12",
                                                          currency="ZZZ")])
    [row] = read_intake_file(path, NOW)
    assert row.error is not None
    parts = row.error.split("; ")
    assert [p.split(":")[0] for p in parts] == ["loan_id", "borrower.phones.0", "currency"]
    assert row.loan_id == "bad id!"  # still named, for the report


def test_csv_malformed_row_does_not_stop_the_others(tmp_path: Path) -> None:
    good = write_csv(tmp_path / "one.csv", [flat("L-1")]).read_text().splitlines()
    text = "\n".join([good[0], good[1], "L-2,too,few,cells", "",
                      good[1].replace("L-1", "L-3")]) + "\n"
    path = tmp_path / "loans.csv"
    path.write_text(text, encoding="utf-8")
    rows = by_row(read_intake_file(path, NOW))
    assert rows[1].ok and rows[4].ok and rows[4].loan_id == "L-3"
    assert rows[2].error is not None and rows[2].error.startswith("malformed CSV row: 4 cells")
    assert 3 not in rows  # the blank line is skipped but keeps spreadsheet numbering


def test_csv_bom_and_header_case_are_tolerated(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv", [flat("L-1")])
    text = path.read_text()
    header, rest = text.split("\n", 1)
    path.write_text("\ufeff" + header.upper() + "\n" + rest, encoding="utf-8")
    [row] = read_intake_file(path, NOW)
    assert row.ok, row.error


@pytest.mark.parametrize(("columns", "message"), [
    (["loan_id", "borower_name"], "unknown column(s) 'borower_name'"),
    (["loan_id", "currency", "currency"], "duplicated column(s) 'currency'"),
    (["loan_id", "borrower_id"], "missing column(s) borrower_name, timezone"),
    ([c for c in FLAT_COLUMNS if c not in ("due_date", "days_past_due")],
     "missing column(s) due_date or days_past_due"),
])
def test_csv_bad_header_is_a_whole_file_error(tmp_path: Path, columns: list[str],
                                              message: str) -> None:
    path = tmp_path / "loans.csv"
    path.write_text(",".join(columns) + "\n", encoding="utf-8")
    with pytest.raises(IntakeFileError, match="bad header") as info:
        read_intake_file(path, NOW)
    assert message in str(info.value)


# --------------------------------------------------------------------------- days_past_due
def test_days_past_due_counts_in_the_borrowers_time_zone(tmp_path: Path) -> None:
    rows = [flat("L-CN", due_date="", days_past_due="3"),
            {**flat("L-US", due_date="", days_past_due="3"), "timezone": "America/New_York",
             "jurisdiction": "US", "currency": "USD", "language": "en",
             "phones": "+12125550147"}]
    path = write_csv(tmp_path / "loans.csv", rows)
    result = by_row(read_intake_file(path, NOW))
    cn, us = result[1].loan, result[2].loan
    assert cn is not None and us is not None
    # 2026-03-10 23:30 UTC is 03-11 in Shanghai and 03-10 in New York.
    assert cn.due_date == date(2026, 3, 8)
    assert us.due_date == date(2026, 3, 7)
    assert cn.days_past_due(NOW) == us.days_past_due(NOW) == 3


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "soon"])
def test_days_past_due_must_be_a_positive_whole_number(tmp_path: Path, value: str) -> None:
    path = write_csv(tmp_path / "loans.csv", [flat("L-1", due_date="", days_past_due=value)])
    [row] = read_intake_file(path, NOW)
    assert row.error == f"days_past_due: expected a whole number of days >= 1, got {value!r}"


def test_due_date_and_days_past_due_together_are_ambiguous(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv", [flat("L-1", days_past_due="2")])
    [row] = read_intake_file(path, NOW)
    assert row.error == "give either due_date or days_past_due, not both"


def test_bad_time_zone_with_days_past_due_reports_only_the_time_zone(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv",
                     [flat("L-1", due_date="", days_past_due="2", timezone="Nowhere/Land")])
    [row] = read_intake_file(path, NOW)
    assert row.error is not None and row.error.startswith("borrower.timezone: unknown time zone")
    assert "due_date" not in row.error


# --------------------------------------------------------------------------- JSON
def nested(loan_id: str = "J-1", **overrides: Any) -> dict[str, Any]:
    loan: dict[str, Any] = {
        "loan_id": loan_id,
        "borrower": {"borrower_id": f"B-{loan_id}", "name": "Maria Garcia",
                     "phones": ["+12125550147"], "email": "maria@example.com",
                     "timezone": "America/New_York", "language": "en"},
        "jurisdiction": "US-NY", "currency": "USD", "principal": 2500.00,
        "outstanding": "812.40", "due_date": "2026-03-01"}
    loan.update(overrides)
    return loan


def test_json_list_of_nested_and_flat_objects(tmp_path: Path) -> None:
    flat_obj: dict[str, Any] = {k: v for k, v in flat("J-2").items() if v}
    flat_obj["phones"] = ["+8613800138000"]  # a list is fine too in JSON
    text = json.dumps([nested("J-1", principal="PRINCIPAL"), flat_obj])
    path = tmp_path / "loans.json"
    path.write_text(text.replace('"PRINCIPAL"', "2500.10"), encoding="utf-8")
    rows = read_intake_file(path, NOW)
    assert [r.error for r in rows] == [None, None]
    first, second = rows[0].loan, rows[1].loan
    assert first is not None and second is not None
    assert first.principal == Decimal("2500.10")  # a JSON number, parsed as Decimal
    assert first.borrower.phones == ["+12125550147"]
    assert second.borrower.borrower_id == "B-J-2"
    assert second.borrower.phones == ["+8613800138000"]


def test_json_loans_key_days_past_due_and_null_means_default(tmp_path: Path) -> None:
    loan = nested("J-1", due_date=None, days_past_due=5, product=None)
    path = write_json(tmp_path / "loans.json", {"loans": [loan]})
    [row] = read_intake_file(path, NOW)
    assert row.loan is not None, row.error
    assert row.loan.due_date == date(2026, 3, 5) and row.loan.product == "instalment"


def test_json_per_row_errors(tmp_path: Path) -> None:
    borrower = nested()["borrower"]
    path = write_json(tmp_path / "loans.json", [
        nested("J-1"),
        "not an object",
        nested("J-3", borrower={**borrower, "phones": ["555"]}),
        nested("J-4", borrower={**borrower, "nickname": "Mo"}),
        {**nested("J-5"), "phones": "+12125550147"},
        nested("J-6", colour="blue"),
        nested("J-7", borrower={**borrower, "phones": [], "email": None}),
    ])
    rows = by_row(read_intake_file(path, NOW))
    assert rows[1].ok
    assert rows[2].error == "expected an object, got str"
    assert rows[3].error is not None and rows[3].error.startswith(
        "borrower.phones.0: malformed phone number '555'")
    assert rows[4].error == "borrower: unknown field(s) 'nickname'"
    assert rows[5].error is not None and "not both" in rows[5].error
    assert rows[6].error == "unknown field(s) 'colour'"
    assert rows[7].error == "borrower: borrower has no phone, email or postal address to contact"


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "invalid JSON at line 1 column 2"),
    ('{"items": []}', "expected a JSON list of loans"),
    ("42", "expected a JSON list of loans"),
])
def test_json_whole_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "loans.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(IntakeFileError, match=message):
        read_intake_file(path, NOW)


# --------------------------------------------------------------------------- files
def test_unknown_extension_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(IntakeFileError, match=r"unsupported file type '\.xlsx'"):
        read_intake_file(tmp_path / "loans.xlsx", NOW)
    with pytest.raises(IntakeFileError, match=r"cannot read .*missing\.csv"):
        read_intake_file(tmp_path / "missing.csv", NOW)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("loan_id\nJos\xe9\n".encode("latin-1"))
    with pytest.raises(IntakeFileError, match="not UTF-8"):
        read_intake_file(latin, NOW)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IntakeFileError, match="empty file"):
        read_intake_file(empty, NOW)


def test_demo_and_example_files_are_valid_forever() -> None:
    now = datetime.now(UTC)
    examples = Path(__file__).resolve().parent.parent / "examples"
    for path in (DEMO_FILE, examples / "loans.csv", examples / "loans.json"):
        rows = read_intake_file(path, now)
        assert rows and all(r.ok for r in rows), [(r.row, r.error) for r in rows]
        for r in rows:
            assert r.loan is not None
            validate_for_start(r, now)
    demo = read_intake_file(DEMO_FILE, now)
    assert len(demo) >= 8
    assert {r.loan.jurisdiction[:2] for r in demo if r.loan} == {"CN", "US", "GB"}


# --------------------------------------------------------------------------- start checks
def test_validate_for_start_rejects_not_overdue_unknown_policy_and_invalid(
        tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv", [
        flat("L-1"),
        flat("L-2", due_date="2026-03-11"),  # today in Shanghai: not overdue yet
        flat("L-3", policy="aggressive"),
        flat("L-4", phones="1"),
    ])
    rows = by_row(read_intake_file(path, NOW))
    loan, policy = validate_for_start(rows[1], NOW)
    assert loan.loan_id == "L-1" and policy.name == "standard"
    with pytest.raises(RowRejected, match=r"loan L-2 is not overdue: due 2026-03-11, and it "
                                          r"is 2026-03-11 in Asia/Shanghai"):
        validate_for_start(rows[2], NOW)
    with pytest.raises(RowRejected, match="unknown policy 'aggressive'; available: demo"):
        validate_for_start(rows[3], NOW)
    with pytest.raises(RowRejected, match=r"borrower\.phones\.0: malformed phone number"):
        validate_for_start(rows[4], NOW)


def test_validate_for_start_finds_policies_in_an_extra_dir(tmp_path: Path) -> None:
    builtin = Path(__file__).resolve().parent.parent / "duecourse" / "policies" / "standard.yaml"
    (tmp_path / "gentle.yaml").write_text(
        builtin.read_text().replace("name: standard", "name: gentle"), encoding="utf-8")
    path = write_csv(tmp_path / "loans.csv", [flat("L-1", policy="gentle")])
    [row] = read_intake_file(path, NOW)
    _, policy = validate_for_start(row, NOW, tmp_path)
    assert policy.name == "gentle"


def test_with_policy_overrides_valid_rows_only(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "loans.csv", [flat("L-1"), flat("L-2", currency="X")])
    rows = with_policy(read_intake_file(path, NOW), "demo")
    assert rows[0].loan is not None and rows[0].loan.policy == "demo"
    assert rows[1].loan is None and rows[1].error


def test_a_demonstration_policy_starts_loans_only_in_a_sandbox(tmp_path: Path) -> None:
    """The demo policy compresses the law's waiting periods and contact hours: a platform
    that names it by mistake is refused unless this is a sandbox (`duecourse dev --demo`,
    DUECOURSE_ALLOW_DEMO_POLICIES)."""
    path = write_csv(tmp_path / "loans.csv", [flat("L-1", policy="demo")])
    [row] = read_intake_file(path, NOW)
    with pytest.raises(RowRejected, match="policy demo is for demonstrations only"):
        validate_for_start(row, NOW)
    _, policy = validate_for_start(row, NOW, allow_demo=True)
    assert policy.demo is not None

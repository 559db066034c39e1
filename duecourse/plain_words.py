"""Validation errors in plain words: one sentence per problem, naming its field.

Pydantic's own phrasing ("String should match pattern ...", "Field required", "Input
should be greater than 0") is for programmers; the API, the CLI and hand-over reports
show people these sentences instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from duecourse.domain import ids
from duecourse.domain.money import AMOUNT_PATTERN

AMOUNT_WORDS = "a decimal amount like 1250.50"

PATTERN_WORDS: dict[str, str] = {
    ids.PLATFORM_ID_PATTERN: "1 to 64 letters, digits, dots, underscores, "
    "colons or hyphens, beginning with a letter or digit",
    ids.REFERENCE_PATTERN: "1 to 128 letters, digits, dots, underscores, "
    "colons, slashes or hyphens, beginning with a letter or digit",
    ids.AGENT_ID_PATTERN: "1 to 64 letters, digits, dots, underscores, @ "
    "signs or hyphens, beginning with a letter or digit",
    r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$": "a language tag such as en or zh-CN",
    ids.PRODUCT_PATTERN: "1 to 32 lowercase letters, digits, underscores or hyphens, "
    "beginning with a letter (such as instalment)",
    ids.POLICY_NAME_PATTERN: "1 to 64 lowercase letters, digits, underscores or hyphens, "
    "beginning with a letter (such as standard)",
    r"^[A-Za-z]{3}$": "a three-letter currency code like USD",
    ids.JURISDICTION_PATTERN: "a country code such as US, or a country and "
    "subdivision such as US-CA",
    r"^(open|done|cancelled|all)$": "one of open, done, cancelled or all",
    r"^[a-z0-9_]+$": "lowercase letters, digits or underscores, such as application_form",
    AMOUNT_PATTERN: AMOUNT_WORDS,
}
"""What each pattern in the API accepts, in words (a test checks the OpenAPI document)."""

Words = Callable[[str, Mapping[str, Any]], str]


def count_of(n: Any, thing: str) -> str:
    return f"{n} {thing}" if str(n) == "1" else f"{n} {thing}s"


def _got(value: Any) -> str:
    """What a JSON value is, in words ("an array")."""
    if isinstance(value, bool):
        return "true or false"
    kinds = {dict: "an object", list: "an array", str: "a string", int: "a number",
             float: "a number", type(None): "null"}
    return next((w for t, w in kinds.items() if isinstance(value, t)), "something else")


def _object(field: str, ctx: Mapping[str, Any]) -> str:
    if "input" not in ctx:
        return f"{field} must be a JSON object"
    got = ctx["input"]
    if isinstance(got, bytes | bytearray):
        return (f"{field} must be a JSON object, sent with Content-Type: application/json")
    return f"{field} must be a JSON object, not {_got(got)}"


def _own(field: str, ctx: Mapping[str, Any]) -> str:
    """A validator's own message: already words, maybe naming its field."""
    error = str(ctx.get("error", ""))
    if field in ("", "the request body"):
        return error
    if error.startswith(("must ", "may ", "is ", "has ")):
        return f"{field} {error}"
    if error.startswith("value "):
        return f"{field}{error.removeprefix('value')}"
    return f"{field}: {error}"


_DATE, _DATETIME = "a date like 2025-06-30", "a date and time like 2025-06-30T14:00:00+08:00"
_URL = "a URL like https://platform.example/hooks"

def _too_long(field: str, ctx: Mapping[str, Any]) -> str:
    return f"{field} is too long: at most {count_of(ctx['max_length'], 'character')}"


def _expected(field: str, ctx: Mapping[str, Any]) -> str:
    return f"{field} must be {ctx['expected']}"


def _says(words: str) -> Words:
    """A sentence that needs nothing from pydantic's context but the field's name."""
    return lambda field, ctx: f"{field} {words}"


SENTENCES: dict[str, tuple[str, Words]] = {
    "missing": ("Field required", _says("is required")),
    "extra_forbidden": ("Extra inputs are not permitted",
                        _says("is not a field this request accepts")),
    "string_pattern_mismatch": (
        "String should match pattern '{pattern}'",
        lambda f, c: f"{f} must be "
                     f"{PATTERN_WORDS.get(str(c['pattern']), 'in the documented form')}"),
    "string_too_short": (
        "String should have at least {min_length} character{expected_plural}",
        lambda f, c: f"{f} may not be empty" if str(c["min_length"]) == "1"
        else f"{f} must be at least {count_of(c['min_length'], 'character')} long"),
    "string_too_long": (
        "String should have at most {max_length} character{expected_plural}", _too_long),
    "string_type": ("Input should be a valid string",
                    _says("must be text (a JSON string)")),
    "string_unicode": (
        "Input should be a valid string, unable to parse raw data as a unicode string",
        _says("must be text (a JSON string)")),
    "greater_than": ("Input should be greater than {gt}",
                     lambda f, c: f"{f} must be greater than {c['gt']}"),
    "greater_than_equal": ("Input should be greater than or equal to {ge}",
                           lambda f, c: f"{f} must be at least {c['ge']}"),
    "less_than": ("Input should be less than {lt}",
                  lambda f, c: f"{f} must be less than {c['lt']}"),
    "less_than_equal": ("Input should be less than or equal to {le}",
                        lambda f, c: f"{f} must be at most {c['le']}"),
    "finite_number": ("Input should be a finite number",
                      _says("must be a finite number")),
    "too_short": (
        "{field_type} should have at least {min_length} item{expected_plural} after "
        "validation, not {actual_length}",
        lambda f, c: f"{f} must have at least {count_of(c['min_length'], 'item')}, "
                     f"got {c['actual_length']}"),
    "too_long": (
        "{field_type} should have at most {max_length} item{expected_plural} after "
        "validation, not {actual_length}",
        lambda f, c: f"{f} may have at most {count_of(c['max_length'], 'item')}, "
                     f"got {c['actual_length']}"),
    "int_type": ("Input should be a valid integer", _says("must be a whole number")),
    "int_parsing": ("Input should be a valid integer, unable to parse string as an integer",
                    _says("must be a whole number")),
    "int_from_float": ("Input should be a valid integer, got a number with a fractional part",
                       _says("must be a whole number, without a fraction")),
    "int_parsing_size": ("Unable to parse input string as an integer, exceeded maximum size",
                         _says("is too large a number")),
    "float_type": ("Input should be a valid number", _says("must be a number")),
    "float_parsing": ("Input should be a valid number, unable to parse string as a number",
                      _says("must be a number")),
    "bool_type": ("Input should be a valid boolean", _says("must be true or false")),
    "bool_parsing": ("Input should be a valid boolean, unable to interpret input",
                     _says("must be true or false")),
    "decimal_type": ("Decimal input should be an integer, float, string or Decimal object",
                     _says(f"must be {AMOUNT_WORDS}")),
    "decimal_parsing": ("Input should be a valid decimal",
                        _says(f"must be {AMOUNT_WORDS}")),
    "date_type": ("Input should be a valid date", _says(f"must be {_DATE}")),
    "date_parsing": ("Input should be a valid date in the format YYYY-MM-DD, {error}",
                     _says(f"must be {_DATE}")),
    "date_from_datetime_parsing": ("Input should be a valid date or datetime, {error}",
                                   _says(f"must be {_DATE}")),
    "date_from_datetime_inexact": (
        "Datetimes provided to dates should have zero time - e.g. be exact dates",
        _says(f"must be {_DATE}, without a time")),
    "datetime_type": ("Input should be a valid datetime",
                      _says(f"must be {_DATETIME}")),
    "datetime_parsing": ("Input should be a valid datetime, {error}",
                         _says(f"must be {_DATETIME}")),
    "datetime_from_date_parsing": ("Input should be a valid datetime or date, {error}",
                                   _says(f"must be {_DATETIME}")),
    "timezone_aware": ("Input should have timezone info",
                       _says("needs a UTC offset, like 2025-06-30T14:00:00+08:00 "
                             "or 2025-06-30T06:00:00Z")),
    "list_type": ("Input should be a valid list", _says("must be a list")),
    "dict_type": ("Input should be a valid dictionary", _object),
    "model_type": ("Input should be a valid dictionary or instance of {class_name}", _object),
    "model_attributes_type": (
        "Input should be a valid dictionary or object to extract fields from", _object),
    "url_type": ("URL input should be a string or URL", _says(f"must be {_URL}")),
    "url_parsing": ("Input should be a valid URL, {error}", _says(f"must be {_URL}")),
    "url_too_long": ("URL should have at most {max_length} character{expected_plural}",
                     _too_long),
    "json_invalid": ("Invalid JSON: {error}",
                     lambda f, c: f"the request body is not valid JSON: {c['error']}"),
    "value_error": ("Value error, {error}", _own),
    "assertion_error": ("Assertion failed, {error}", _own),
    # last: "Input should be {expected}" would also match the messages above
    "enum": ("Input should be {expected}", _expected),
    "literal_error": ("Input should be {expected}", _expected),
}
"""Pydantic error type -> (pydantic's message template, the sentence in plain words)."""


def _template(message: str) -> re.Pattern[str]:
    """Pydantic's message template as a regex capturing its context."""
    parts = re.split(r"\{(\w+)\}", message)
    return re.compile("".join(
        re.escape(p) if i % 2 == 0 else "s?" if p == "expected_plural" else f"(?P<{p}>.+?)"
        for i, p in enumerate(parts)), re.S)


TEMPLATES = [(kind, _template(message)) for kind, (message, _) in SENTENCES.items()]


def field_words(loc: Iterable[Any]) -> str:
    """Where in the request: `borrower.phones.0`, "the query parameter page_size"."""
    where = [str(p) for p in loc]
    if where[:1] == ["body"]:
        return ".".join(where[1:]) or "the request body"
    if len(where) > 1 and where[0] in ("query", "path", "header", "cookie"):
        return f"the {where[0]} parameter {where[1]}"
    return ".".join(where)


def plain_message(field: str, kind: str, ctx: Mapping[str, Any], message: str) -> str:
    """One validation error as a sentence naming its field."""
    entry = SENTENCES.get(kind)
    if entry is not None:
        try:
            return entry[1](field or "the request body", ctx)
        except KeyError:  # a context this pydantic does not give: recover it from the text
            pass
    for known, regex in TEMPLATES:
        if (match := regex.fullmatch(message)) is not None:
            return SENTENCES[known][1](field or "the request body", match.groupdict())
    return _own(field, {"error": message})


def dotted(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc)


def plain_errors(errors: Iterable[Mapping[str, Any]],
                 where: Callable[[Iterable[Any]], str] = field_words) -> list[dict[str, Any]]:
    """Validation errors as plain JSON: location, the sentence, pydantic's type."""
    out = []
    for e in errors:
        loc, kind = [str(p) for p in e.get("loc", ())], str(e.get("type", ""))
        ctx = {**e.get("ctx", {}), **({"input": e["input"]} if "input" in e else {})}
        out.append({"loc": loc, "msg": plain_message(where(loc), kind, ctx,
                                                     str(e.get("msg", ""))), "type": kind})
    return out


_PART = re.compile(r"(?:(?P<where>[A-Za-z_]\w*(?:\.\w+)*): )?(?P<message>.*)", re.S)


def plain_reason_errors(reason: str, under: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """An intake row's reason (`field.path: pydantic message; ...`) as plain errors, their
    locations `under` a prefix (("body",) for a request's)."""
    out = []
    for part in reason.split("; "):
        match = _PART.fullmatch(part)
        where, message = (match["where"], match["message"]) if match else (None, part)
        kind = next((k for k, regex in TEMPLATES if regex.fullmatch(message)), None)
        loc = [*under, *(where.split(".") if where else [])]
        if where is None or kind is None:  # already words (ours), kept as they are
            out.append({"loc": loc, "msg": part, "type": "value_error"})
        else:
            out.append({"loc": loc, "msg": plain_message(where, "", {}, message),
                        "type": kind})
    return out


def plain_reason(reason: str) -> str:
    """An intake row's reason in plain words (intake keeps pydantic's, for its files)."""
    return "; ".join(e["msg"] for e in plain_reason_errors(reason))

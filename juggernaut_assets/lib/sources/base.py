"""What every source module shares: the request, the row, the error, and body checks.

A source module builds `SourceRequest`s (`requests_for`) and turns one response into
`TrendRow`s (`parse`). Parsing never lets a `KeyError` or `TypeError` out: a body that is not
what the source returns raises `SourceFormatError` with a message a person can act on, and a
single unusable item inside a good body is skipped and listed in `ParsedRows.skipped`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any


class Source(StrEnum):
    GITHUB = "github"
    HACKERNEWS = "hackernews"
    GOOGLE_TRENDS = "google_trends"
    WIKIPEDIA = "wikipedia"
    PYPI = "pypi"
    NPM = "npm"
    RDAP = "rdap"
    WAYBACK = "wayback"


@dataclass(frozen=True)
class SourceRequest:
    """One GET to make. `headers` never carry credentials: the HTTP resource adds auth."""

    source: str
    url: str
    term: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class TrendRow:
    """One observation: `value` of `metric` for `term` from `source` on `observed_date`."""

    term: str
    source: str
    metric: str
    value: float
    observed_date: date
    url: str | None


class ParsedRows(list[TrendRow]):
    """The rows from one response, plus what was left out of them and why.

    `skipped` has one entry per unusable item (a hit with `points: null`, a day with a
    non-numeric count); `warnings` notes what makes good rows less complete (e.g. GitHub's
    `incomplete_results`).
    """

    def __init__(
        self,
        rows: Iterable[TrendRow] = (),
        skipped: Iterable[str] = (),
        warnings: Iterable[str] = (),
    ) -> None:
        super().__init__(rows)
        self.skipped: list[str] = list(skipped)
        self.warnings: list[str] = list(warnings)


class SourceFormatError(ValueError):
    """The body is not what the source returns; the message says what was wrong."""


class SourceStatusError(SourceFormatError):
    """The source answered with an error status instead of data (e.g. 404: no such package)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def normalise_term(text: str) -> str:
    """Lower-case with single spaces: the shared vocabulary sources agree on."""
    return " ".join(text.split()).lower()


_TAG = re.compile(r"<[^>]*>")


def body_snippet(body: bytes, limit: int = 160) -> str:
    """The start of a body as one readable line (markup stripped), for error messages."""
    text = body[: limit * 8].decode("utf-8", errors="replace")
    text = " ".join(_TAG.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return head.startswith(("<!doctype html", "<html")) or "<html" in head or "<body" in head


def _error_detail(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body_snippet(body)
    if isinstance(data, dict):
        for key in ("message", "detail", "error", "title", "description"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                return " ".join(value)
    return body_snippet(body)


def check_status(source: str, status: int, body: bytes, what: str | None = None) -> None:
    """Raise `SourceStatusError` unless `status` is 2xx, quoting the body's own explanation."""
    if 200 <= status < 300:
        return
    target = f" for {what!r}" if what else ""
    detail = _error_detail(body) or "empty body"
    raise SourceStatusError(f"{source}: HTTP {status}{target}: {detail}", status)


def decode_text(source: str, status: int, body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceFormatError(
            f"{source}: body with status {status} is not UTF-8 text (bad byte at {exc.start})"
        ) from None


def _truncated(text: str, error: json.JSONDecodeError) -> bool:
    rest = text[error.pos :].strip()
    if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string"):
        return True
    literals = ("true", "false", "null")
    return bool(rest) and any(word.startswith(rest) and word != rest for word in literals)


def load_json(source: str, status: int, body: bytes, what: str | None = None) -> Any:
    """The JSON value of a 2xx body, or a `SourceFormatError` that names the problem."""
    check_status(source, status, body, what)
    text = decode_text(source, status, body)
    if not text.strip():
        raise SourceFormatError(f"{source}: empty body with status {status}, not JSON")
    if looks_like_html(text):
        raise SourceFormatError(
            f"{source}: HTML page with status {status}, not JSON: {body_snippet(body)!r}"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if _truncated(text, exc):
            raise SourceFormatError(
                f"{source}: truncated JSON at char {exc.pos} of {len(text)}"
            ) from None
        raise SourceFormatError(
            f"{source}: invalid JSON at char {exc.pos}: {exc.msg} ({body_snippet(body, 60)!r})"
        ) from None
    except RecursionError:
        raise SourceFormatError(f"{source}: JSON nested too deeply") from None


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def require_object(source: str, data: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SourceFormatError(f"{source}: {what} is a JSON {type_name(data)}, not an object")
    return data


def require_list(source: str, data: Mapping[str, Any], key: str) -> list[Any]:
    if key not in data:
        raise SourceFormatError(f"{source}: missing key {key}")
    value = data[key]
    if not isinstance(value, list):
        raise SourceFormatError(f"{source}: {key} is a {type_name(value)}, not a list")
    return value


def as_count(value: Any) -> float | None:
    """A finite, non-negative JSON number as float; None for anything else (bool, str, null)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        return None
    return number


def describe_bad(name: str, value: Any) -> str:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:39] + "…"
    return f"{name} is {type_name(value)} {shown}, not a number"


@dataclass(frozen=True)
class DailySeries:
    """Where a source keeps a daily series in its JSON: `items[].{date_key, value_key}`."""

    items_key: str
    date_key: str
    date_format: str
    """How the date should look, for the skip message (`YYYY-MM-DD`)."""
    value_key: str
    metric: str


def parse_daily_series(
    source: str,
    data: Mapping[str, Any],
    shape: DailySeries,
    parse_date: Callable[[object], date | None],
    term: str,
    url: str | None,
) -> ParsedRows:
    """One row per day of a daily series; bad or repeated days are skipped with a reason."""
    rows: dict[date, TrendRow] = {}
    skipped: list[str] = []
    key = shape.items_key
    for index, item in enumerate(require_list(source, data, key)):
        if not isinstance(item, dict):
            skipped.append(f"{key}[{index}] is a {type_name(item)}, not an object")
            continue
        raw_date = item.get(shape.date_key)
        observed = parse_date(raw_date)
        if observed is None:
            skipped.append(
                f"{key}[{index}]: {shape.date_key} {raw_date!r} is not {shape.date_format}"
            )
            continue
        value = as_count(item.get(shape.value_key))
        if value is None:
            reason = describe_bad(shape.value_key, item.get(shape.value_key))
            skipped.append(f"{key}[{index}] ({observed}): {reason}")
            continue
        if observed in rows:
            skipped.append(f"{key}[{index}]: second entry for {observed}")
            continue
        rows[observed] = TrendRow(term, source, shape.metric, value, observed, url)
    return ParsedRows(sorted(rows.values(), key=lambda r: r.observed_date), skipped)

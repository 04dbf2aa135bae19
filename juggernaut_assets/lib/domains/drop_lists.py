"""Drop lists (names about to be deleted, from a URL or file the operator supplies) → a frame.

Two shapes are read: one name a line (blank lines and `#` comments ignored), or CSV whose
header has a `domain` column (any case; `,`, `;` or tab separated; quoted fields; other columns
ignored). Every name goes through `normalize_domain`; junk becomes a row with `error` set, never
an exception. A name listed twice is kept once, at its first line.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator

import polars as pl

from juggernaut_assets.lib.domains.normalize import normalize_domain

DROP_LIST_SCHEMA = pl.Schema(
    {
        "raw": pl.String,
        "domain": pl.String,
        "tld": pl.String,
        "source": pl.String,
        "line": pl.Int64,
        "error": pl.String,
    }
)
DOMAIN_COLUMN = "domain"
CSV_DELIMITERS = (",", ";", "\t")
NOT_A_LIST_HTML = "looks like an HTML page, not a drop list"
NOT_A_LIST_BINARY = "looks like a binary file, not a drop list"
_SNIFF_BYTES = 4096


def _is_skipped(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _csv_header(line: str) -> tuple[str, int] | None:
    """(delimiter, index of the domain column) when `line` is a CSV header naming `domain`."""
    for delimiter in CSV_DELIMITERS:
        if delimiter not in line and line.strip().lower().strip('"') != DOMAIN_COLUMN:
            continue
        fields = next(csv.reader([line], delimiter=delimiter), [])
        names = [field.strip().lower() for field in fields]
        if DOMAIN_COLUMN in names:
            return delimiter, names.index(DOMAIN_COLUMN)
    return None


def _plain_rows(lines: list[str]) -> Iterator[tuple[int, str, str | None]]:
    for number, line in enumerate(lines, start=1):
        if not _is_skipped(line):
            yield number, line.strip(), None


def _csv_rows(
    text: str, header_line: int, delimiter: str, column: int
) -> Iterator[tuple[int, str, str | None]]:
    lines = io.StringIO(text)
    for _ in range(header_line):
        lines.readline()
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start = header_line + reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, "", f"unreadable CSV row: {exc}"
            continue
        if not fields or all(not f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
            continue
        if column >= len(fields):
            raw = delimiter.join(fields)
            count = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
            yield start, raw, f"row has {count}; the domain is field {column + 1}"
            continue
        yield start, fields[column].strip(), None


def _frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=DROP_LIST_SCHEMA, orient="row")


def parse_drop_list(text: str, source: str) -> pl.DataFrame:
    """Rows `raw, domain, tld, source, line, error` for every name in `text`.

    `line` is the 1-based line number in `text` (for a CSV row spanning lines, the line it
    starts on). Valid rows have `domain` and `tld` and a null `error`; invalid ones the reverse.
    A CSV header row is not a row of the result. Duplicate valid names keep their first line.
    """
    lines = text.splitlines()
    first = next(((i, line) for i, line in enumerate(lines) if not _is_skipped(line)), None)
    header = _csv_header(first[1]) if first is not None else None
    if first is not None and header is not None:
        delimiter, column = header
        found = _csv_rows("\n".join(lines), first[0] + 1, delimiter, column)
    else:
        found = _plain_rows(lines)

    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for number, raw, error in found:
        if error is not None:
            rows.append(_row(raw, None, None, source, number, error))
            continue
        name = normalize_domain(raw)
        if name.domain is not None:
            if name.domain in seen:
                continue
            seen.add(name.domain)
        rows.append(_row(raw, name.domain, name.tld, source, number, name.error))
    return _frame(rows)


def _row(
    raw: str, domain: str | None, tld: str | None, source: str, line: int, error: str | None
) -> dict[str, object]:
    return dict(raw=raw, domain=domain, tld=tld, source=source, line=line, error=error)


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _looks_like_html(text: str) -> bool:
    head = text[:_SNIFF_BYTES].lstrip().lower()
    return head.startswith(("<!doctype html", "<html", "<?xml", "<head", "<body")) or (
        "<html" in head and "</" in head
    )


def read_drop_list_bytes(data: bytes, source: str) -> pl.DataFrame:
    """`parse_drop_list` for a downloaded or uploaded body.

    Decoding: gzip is unpacked; UTF-8 (a byte-order mark is dropped), UTF-16 with a byte-order
    mark, and anything else as Latin-1. A body that is an HTML page (a login or error page
    served instead of the list) or binary data becomes a single error row saying so.
    """
    if data.startswith(b"\x1f\x8b"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            return _frame([_row("", None, None, source, 1, f"broken gzip data: {exc}")])
    text = _decode(data)
    preview = "".join(c if c.isprintable() else "?" for c in text[:60].strip())
    if "\x00" in text[:_SNIFF_BYTES]:
        return _frame([_row(preview, None, None, source, 1, NOT_A_LIST_BINARY)])
    if _looks_like_html(text):
        return _frame([_row(preview, None, None, source, 1, NOT_A_LIST_HTML)])
    return parse_drop_list(text, source)

"""Wayback Machine CDX: how much of a domain's past the archive holds.

`wayback_request` asks for the domain's successful captures, one per month (`collapse=
timestamp:6`), oldest first, at most `limit`; `parse_wayback_cdx` counts them and reads the
year of the first. The JSON answer's first row is the header; an empty body or `[]` means no
captures.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from juggernaut_assets.lib.sources.base import (
    Source,
    SourceFormatError,
    check_status,
    decode_text,
    load_json,
    type_name,
)

SOURCE = Source.WAYBACK.value
DEFAULT_BASE = "https://web.archive.org"
DEFAULT_LIMIT = 500


@dataclass(frozen=True)
class WaybackResult:
    """Months with a successful capture (up to the limit), the first capture's year, and how
    many rows were unreadable."""

    snapshots: int
    first_archived_year: int | None
    skipped: int = 0


def wayback_request(domain: str, base_url: str = DEFAULT_BASE, limit: int = DEFAULT_LIMIT) -> str:
    query = urlencode(
        {
            "url": domain.strip().lower(),
            "output": "json",
            "fl": "timestamp,statuscode",
            "filter": "statuscode:200",
            "collapse": "timestamp:6",
            "limit": limit,
        },
        quote_via=quote,
        safe=",:",
    )
    return f"{base_url.rstrip('/')}/cdx/search/cdx?{query}"


def parse_wayback_cdx(body: bytes, status: int = 200) -> WaybackResult:
    check_status(SOURCE, status, body, "CDX search")
    if not decode_text(SOURCE, status, body).strip():
        return WaybackResult(snapshots=0, first_archived_year=None)
    data = load_json(SOURCE, status, body, "CDX search")
    if not isinstance(data, list):
        raise SourceFormatError(f"{SOURCE}: CDX answer is a JSON {type_name(data)}, not a list")
    if not data:
        return WaybackResult(snapshots=0, first_archived_year=None)
    header = data[0]
    if not isinstance(header, list) or "timestamp" not in header:
        raise SourceFormatError(f"{SOURCE}: first row {header!r} is not a header with timestamp")
    column = header.index("timestamp")
    years: list[int] = []
    skipped = 0
    for row in data[1:]:
        stamp = row[column] if isinstance(row, list) and len(row) > column else None
        if not (isinstance(stamp, str) and len(stamp) >= 4 and stamp[:4].isdigit()):
            skipped += 1
            continue
        years.append(int(stamp[:4]))
    return WaybackResult(
        snapshots=len(years), first_archived_year=min(years) if years else None, skipped=skipped
    )

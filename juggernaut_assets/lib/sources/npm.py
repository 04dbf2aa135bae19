"""npm downloads per tracked package, day by day (api.npmjs.org `downloads/range`).

One request per package for the 30 days ending `day`. Metric `downloads`, one row per day.
The term is the package name, lower-cased (scoped names keep their `@scope/`).
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote

from juggernaut_assets.lib.sources.base import (
    ParsedRows,
    Source,
    SourceRequest,
    TrendRow,
    as_count,
    describe_bad,
    load_json,
    require_list,
    require_object,
    type_name,
)
from juggernaut_assets.lib.sources.tracked import TrackedItems

SOURCE = Source.NPM.value
DEFAULT_BASE = "https://api.npmjs.org"
WINDOW_DAYS = 30
HEADERS = {"Accept": "application/json"}


def requests_for(
    tracked: TrackedItems, day: date, base_url: str = DEFAULT_BASE
) -> list[SourceRequest]:
    start = (day - timedelta(days=WINDOW_DAYS - 1)).isoformat()
    base = base_url.rstrip("/")
    return [
        SourceRequest(
            source=SOURCE,
            url=f"{base}/downloads/range/{start}:{day.isoformat()}/{quote(p.lower(), safe='@/')}",
            term=p.lower(),
            headers=dict(HEADERS),
        )
        for p in tracked.npm_packages
    ]


def _day(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse(request: SourceRequest, status: int, body: bytes, day: date) -> ParsedRows:
    if not request.term:
        raise ValueError("an npm request needs the package it is for")
    term = request.term.lower()
    data = require_object(SOURCE, load_json(SOURCE, status, body, term))
    days = require_list(SOURCE, data, "downloads")
    url = f"https://www.npmjs.com/package/{term}"
    rows: dict[date, TrendRow] = {}
    skipped: list[str] = []
    for index, entry in enumerate(days):
        if not isinstance(entry, dict):
            skipped.append(f"downloads[{index}] is a {type_name(entry)}, not an object")
            continue
        observed = _day(entry.get("day"))
        if observed is None:
            skipped.append(f"downloads[{index}]: day {entry.get('day')!r} is not YYYY-MM-DD")
            continue
        value = as_count(entry.get("downloads"))
        if value is None:
            reason = describe_bad("downloads", entry.get("downloads"))
            skipped.append(f"downloads[{index}] ({observed}): {reason}")
            continue
        if observed in rows:
            skipped.append(f"downloads[{index}]: second entry for {observed}")
            continue
        rows[observed] = TrendRow(term, SOURCE, "downloads", value, observed, url)
    return ParsedRows(sorted(rows.values(), key=lambda r: r.observed_date), skipped)

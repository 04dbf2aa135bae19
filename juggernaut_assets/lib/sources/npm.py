"""npm downloads per tracked package, day by day (api.npmjs.org `downloads/range`).

One request per package for the 30 days ending `day`. Metric `downloads`, one row per day.
The term is the package name, lower-cased (scoped names keep their `@scope/`).
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote

from juggernaut_assets.lib.sources.base import (
    DailySeries,
    ParsedRows,
    Source,
    SourceRequest,
    load_json,
    parse_daily_series,
    require_object,
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


SERIES = DailySeries("downloads", "day", "YYYY-MM-DD", "downloads", "downloads")


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
    url = f"https://www.npmjs.com/package/{term}"
    return parse_daily_series(SOURCE, data, SERIES, _day, term, url)

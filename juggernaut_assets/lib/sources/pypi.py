"""PyPI downloads per tracked package (pypistats.org `recent`).

One request per package. Metrics: `downloads_last_day` (observed on `day` − 1, the last whole
day pypistats counts), `downloads_last_week` and `downloads_last_month` (observed on `day`).
The term is the package name, lower-cased.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from urllib.parse import quote

from juggernaut_assets.lib.sources.base import (
    ParsedRows,
    Source,
    SourceFormatError,
    SourceRequest,
    TrendRow,
    as_count,
    describe_bad,
    load_json,
    require_object,
    type_name,
)
from juggernaut_assets.lib.sources.tracked import TrackedItems

SOURCE = Source.PYPI.value
DEFAULT_BASE = "https://pypistats.org/api"
HEADERS = {"Accept": "application/json"}
_SEPARATORS = re.compile(r"[-_.]+")
METRICS = {
    "last_day": "downloads_last_day",
    "last_week": "downloads_last_week",
    "last_month": "downloads_last_month",
}


def package_name(name: str) -> str:
    """The PEP 503 normalised name: 'Foo_Bar' -> 'foo-bar'."""
    return _SEPARATORS.sub("-", name.strip()).lower()


def requests_for(
    tracked: TrackedItems, day: date, base_url: str = DEFAULT_BASE
) -> list[SourceRequest]:
    base = base_url.rstrip("/")
    return [
        SourceRequest(
            source=SOURCE,
            url=f"{base}/packages/{quote(package_name(p), safe='')}/recent",
            term=package_name(p),
            headers=dict(HEADERS),
        )
        for p in tracked.pypi_packages
    ]


def parse(request: SourceRequest, status: int, body: bytes, day: date) -> ParsedRows:
    if not request.term:
        raise ValueError("a pypi request needs the package it is for")
    term = package_name(request.term)
    data = require_object(SOURCE, load_json(SOURCE, status, body, term))
    if "data" not in data:
        raise SourceFormatError(f"{SOURCE}: missing key data")
    counts = data["data"]
    if not isinstance(counts, dict):
        raise SourceFormatError(f"{SOURCE}: data is a {type_name(counts)}, not an object")
    url = f"https://pypi.org/project/{term}/"
    rows: list[TrendRow] = []
    skipped: list[str] = []
    for key, metric in METRICS.items():
        if key not in counts:
            skipped.append(f"data.{key} missing")
            continue
        value = as_count(counts[key])
        if value is None:
            skipped.append(f"data.{describe_bad(key, counts[key])}")
            continue
        observed = day - timedelta(days=1) if key == "last_day" else day
        rows.append(TrendRow(term, SOURCE, metric, value, observed, url))
    if not rows:
        raise SourceFormatError(f"{SOURCE}: no download counts in data ({'; '.join(skipped)})")
    return ParsedRows(rows, skipped)

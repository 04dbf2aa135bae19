"""Hacker News stories about each tracked term (Algolia's `search_by_date`).

One request per term for stories created on `day` (00:00 to 24:00 UTC) with at least
`hn_min_points` points, 100 hits per page.

Metrics: `stories` (Algolia's `nbHits`, all matching stories) and `points` (summed over the
hits returned, i.e. the 100 newest when there are more; a warning says so).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from juggernaut_assets.lib.sources.base import (
    ParsedRows,
    Source,
    SourceFormatError,
    SourceRequest,
    TrendRow,
    as_count,
    describe_bad,
    load_json,
    normalise_term,
    require_list,
    require_object,
    type_name,
)
from juggernaut_assets.lib.sources.tracked import TrackedItems

SOURCE = Source.HACKERNEWS.value
DEFAULT_BASE = "https://hn.algolia.com/api/v1"
HITS_PER_PAGE = 100


def day_window(day: date) -> tuple[int, int]:
    """Unix seconds [start, end) of `day` in UTC."""
    start = int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())
    return start, start + int(timedelta(days=1).total_seconds())


def human_url(term: str, day: date) -> str:
    start, end = day_window(day)
    query = urlencode(
        {
            "query": term,
            "type": "story",
            "sort": "byDate",
            "dateRange": "custom",
            "dateStart": start,
            "dateEnd": end,
        }
    )
    return f"https://hn.algolia.com/?{query}"


def requests_for(
    tracked: TrackedItems, day: date, base_url: str = DEFAULT_BASE
) -> list[SourceRequest]:
    start, end = day_window(day)
    filters = f"created_at_i>={start},created_at_i<{end},points>={tracked.hn_min_points}"
    requests = []
    for term in tracked.terms:
        query = urlencode(
            {
                "query": term,
                "tags": "story",
                "numericFilters": filters,
                "hitsPerPage": HITS_PER_PAGE,
            }
        )
        url = f"{base_url.rstrip('/')}/search_by_date?{query}"
        requests.append(SourceRequest(source=SOURCE, url=url, term=term))
    return requests


def parse(request: SourceRequest, status: int, body: bytes, day: date) -> ParsedRows:
    if not request.term:
        raise ValueError("a hackernews request needs the term it searched for")
    data = require_object(SOURCE, load_json(SOURCE, status, body, request.term))
    hits = require_list(SOURCE, data, "hits")
    if "nbHits" not in data:
        raise SourceFormatError(f"{SOURCE}: missing key nbHits")
    stories = as_count(data["nbHits"])
    if stories is None:
        raise SourceFormatError(f"{SOURCE}: {describe_bad('nbHits', data['nbHits'])}")
    points = 0.0
    skipped: list[str] = []
    for index, hit in enumerate(hits):
        if not isinstance(hit, dict):
            skipped.append(f"hits[{index}] is a {type_name(hit)}, not an object")
            continue
        value = as_count(hit.get("points"))
        if value is None:
            reason = describe_bad("points", hit.get("points"))
            skipped.append(f"hits[{index}] (objectID {hit.get('objectID')}): {reason}")
            continue
        points += value
    warnings = []
    if stories > len(hits):
        warnings.append(f"points summed over the {len(hits)} newest of {int(stories)} stories")
    term = normalise_term(request.term)
    url = human_url(term, day)
    rows = [
        TrendRow(term, SOURCE, "stories", stories, day, url),
        TrendRow(term, SOURCE, "points", points, day, url),
    ]
    return ParsedRows(rows, skipped, warnings)

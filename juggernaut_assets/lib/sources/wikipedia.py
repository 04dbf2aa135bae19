"""Wikipedia pageviews per tracked article (Wikimedia REST API, human views only).

One request per article for the 30 days ending `day`, daily. Each item is a row:
metric `pageviews`, observed on its `timestamp` (YYYYMMDD00), term from the article mapping,
linked to the article page. Days Wikimedia has no data for are simply absent.
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote, unquote, urlsplit

from juggernaut_assets.lib.sources.base import (
    DailySeries,
    ParsedRows,
    Source,
    SourceRequest,
    load_json,
    normalise_term,
    parse_daily_series,
    require_object,
)
from juggernaut_assets.lib.sources.tracked import TrackedItems

SOURCE = Source.WIKIPEDIA.value
DEFAULT_BASE = "https://wikimedia.org/api/rest_v1"
WINDOW_DAYS = 30
USER_AGENT = (
    "juggernaut-assets/0.1 (market-trend pageviews, one request per article per day; "
    "Dagster code location)"
)
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


def article_path(title: str) -> str:
    """'Rust (programming language)' -> 'Rust_%28programming_language%29' (slashes encoded)."""
    return quote("_".join(title.split()), safe="")


def stamp(day: date) -> str:
    return day.strftime("%Y%m%d") + "00"


def requests_for(
    tracked: TrackedItems, day: date, base_url: str = DEFAULT_BASE
) -> list[SourceRequest]:
    start = stamp(day - timedelta(days=WINDOW_DAYS - 1))
    end = stamp(day)
    base = base_url.rstrip("/")
    project = tracked.wikipedia_project
    return [
        SourceRequest(
            source=SOURCE,
            url=(
                f"{base}/metrics/pageviews/per-article/{project}/all-access/user/"
                f"{article_path(title)}/daily/{start}/{end}"
            ),
            term=term,
            headers=dict(HEADERS),
        )
        for title, term in tracked.wikipedia_articles.items()
    ]


def article_url(request_url: str) -> str | None:
    """The article page a pageviews request is about, read back from its URL."""
    parts = urlsplit(request_url).path.split("/")
    if "per-article" not in parts:
        return None
    at = parts.index("per-article")
    if len(parts) < at + 5:
        return None
    project, article = parts[at + 1], parts[at + 4]
    return f"https://{project}/wiki/{quote(unquote(article), safe='()')}"


SERIES = DailySeries("items", "timestamp", "YYYYMMDDHH", "views", "pageviews")


def _timestamp_date(value: object) -> date | None:
    if not isinstance(value, str) or len(value) != 10 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def parse(request: SourceRequest, status: int, body: bytes, day: date) -> ParsedRows:
    if not request.term:
        raise ValueError("a wikipedia request needs the term its article counts for")
    term = normalise_term(request.term)
    data = require_object(SOURCE, load_json(SOURCE, status, body, request.term))
    return parse_daily_series(SOURCE, data, SERIES, _timestamp_date, term, article_url(request.url))

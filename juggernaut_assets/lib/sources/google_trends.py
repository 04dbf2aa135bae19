"""Google Trends' daily trending searches (the RSS feed at `/trending/rss?geo=…`).

One request per day. Each `<item>` becomes a row: term = the search (lower-cased), metric
`approx_traffic` ("2,000+" -> 2000, "20K+" -> 20000, "1M+" -> 1000000), observed on the item's
`pubDate` (UTC) or else on `day`, linked to its first news story.

The feed is untrusted XML: it is parsed with defusedxml when installed (entity declarations
refused), else with the standard library's parser.
"""

from __future__ import annotations

import re
from datetime import UTC, date
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode
from xml.etree.ElementTree import Element, ParseError

from juggernaut_assets.lib.sources.base import (
    ParsedRows,
    Source,
    SourceFormatError,
    SourceRequest,
    TrendRow,
    body_snippet,
    check_status,
    decode_text,
    looks_like_html,
    normalise_term,
)
from juggernaut_assets.lib.sources.tracked import TrackedItems

try:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring
except ImportError:  # pragma: no cover - defusedxml is a dependency; this is the fallback
    from xml.etree.ElementTree import fromstring

    class DefusedXmlException(ValueError):  # type: ignore[no-redef]
        pass


SOURCE = Source.GOOGLE_TRENDS.value
DEFAULT_BASE = "https://trends.google.com"
HEADERS = {"Accept": "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8"}
_TRAFFIC = re.compile(r"^\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*([KkMmBb]?)\s*\+?\s*$")
_MULTIPLIER = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}


def requests_for(
    tracked: TrackedItems, day: date, base_url: str = DEFAULT_BASE
) -> list[SourceRequest]:
    url = f"{base_url.rstrip('/')}/trending/rss?{urlencode({'geo': tracked.google_trends_geo})}"
    return [SourceRequest(source=SOURCE, url=url, headers=dict(HEADERS))]


def parse_traffic(text: str) -> float | None:
    """'2,000+' -> 2000.0, '20K+' -> 20000.0, '1.5M+' -> 1500000.0; None if unreadable."""
    match = _TRAFFIC.match(text)
    if not match:
        return None
    number = float(match.group(1).replace(",", ""))
    return number * _MULTIPLIER[match.group(2).lower()]


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: Element, name: str) -> Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _child_text(element: Element, name: str) -> str | None:
    child = _child(element, name)
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None


def _published(text: str | None, day: date) -> date:
    if not text:
        return day
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return day
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(UTC).date()


def _first_news_url(item: Element) -> str | None:
    for child in item:
        if _local(child.tag) == "news_item":
            url = _child_text(child, "news_item_url")
            if url and url.startswith(("https://", "http://")):
                return url
    return None


def _root(status: int, body: bytes) -> Element:
    check_status(SOURCE, status, body, "trending searches feed")
    text = decode_text(SOURCE, status, body)
    if not text.strip():
        raise SourceFormatError(f"{SOURCE}: empty body with status {status}, not RSS")
    if looks_like_html(text):
        raise SourceFormatError(
            f"{SOURCE}: HTML page with status {status}, not RSS: {body_snippet(body)!r}"
        )
    try:
        return fromstring(body)
    except DefusedXmlException as exc:
        raise SourceFormatError(f"{SOURCE}: XML refused as unsafe ({type(exc).__name__})") from None
    except ParseError as exc:
        line, column = exc.position
        kind = "truncated XML" if "no element found" in str(exc) else "malformed XML"
        raise SourceFormatError(f"{SOURCE}: {kind} at line {line}, column {column}") from None


def parse(request: SourceRequest, status: int, body: bytes, day: date) -> ParsedRows:
    root = _root(status, body)
    if _local(root.tag) != "rss":
        raise SourceFormatError(f"{SOURCE}: XML root is <{_local(root.tag)}>, not <rss>")
    channel = _child(root, "channel")
    if channel is None:
        raise SourceFormatError(f"{SOURCE}: RSS has no <channel>")
    best: dict[tuple[str, date], TrendRow] = {}
    skipped: list[str] = []
    warnings: list[str] = []
    items = [c for c in channel if _local(c.tag) == "item"]
    for index, item in enumerate(items):
        title = _child_text(item, "title")
        if not title:
            skipped.append(f"item {index + 1} has no title")
            continue
        raw = _child_text(item, "approx_traffic")
        traffic = parse_traffic(raw) if raw else None
        if traffic is None:
            skipped.append(f"item {index + 1} ({title!r}): approx_traffic {raw!r} is not a count")
            continue
        row = TrendRow(
            term=normalise_term(title),
            source=SOURCE,
            metric="approx_traffic",
            value=traffic,
            observed_date=_published(_child_text(item, "pubDate"), day),
            url=_first_news_url(item),
        )
        key = (row.term, row.observed_date)
        if key in best:
            warnings.append(f"{row.term!r} listed twice on {row.observed_date}: kept the larger")
            if best[key].value >= row.value:
                continue
        best[key] = row
    return ParsedRows(best.values(), skipped, warnings)

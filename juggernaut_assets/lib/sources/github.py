"""GitHub repository search: what new repositories are about.

One request per day: repositories created in the 7 days ending `day` with at least
`github_min_stars` stars, most-starred first (100 max). Each topic and each language becomes a
term (lower-cased, topic hyphens read as spaces: `ai-agents` -> "ai agents"); a repository
counts once per term even when its topic and language agree.

Metrics: `new_repos` (repositories), `new_repo_stars` (their stars summed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from juggernaut_assets.lib.sources.base import (
    ParsedRows,
    Source,
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

SOURCE = Source.GITHUB.value
DEFAULT_BASE = "https://api.github.com"
WINDOW_DAYS = 7
PER_PAGE = 100
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


def requests_for(
    tracked: TrackedItems, day: date, base_url: str = DEFAULT_BASE
) -> list[SourceRequest]:
    since = day - timedelta(days=WINDOW_DAYS - 1)
    created = f"created:{since.isoformat()}..{day.isoformat()}"
    query = urlencode(
        {
            "q": f"{created} stars:>={tracked.github_min_stars}",
            "sort": "stars",
            "order": "desc",
            "per_page": PER_PAGE,
        }
    )
    url = f"{base_url.rstrip('/')}/search/repositories?{query}"
    return [SourceRequest(source=SOURCE, url=url, headers=dict(HEADERS))]


def topic_term(topic: str) -> str:
    return normalise_term(topic.replace("-", " "))


@dataclass
class _Tally:
    url: str
    repos: set[str] = field(default_factory=set)
    stars: float = 0.0


def _repo_terms(item: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """term -> human URL for one repository, or a reason to skip it."""
    terms: dict[str, str] = {}
    language = item.get("language")
    if language is not None and not isinstance(language, str):
        return {}, f"language is {type_name(language)}, not a string"
    topics = item.get("topics", [])
    if topics is None:
        topics = []
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        return {}, "topics is not a list of strings"
    for topic in topics:
        if topic.strip():
            terms[topic_term(topic)] = f"https://github.com/topics/{quote(topic.strip().lower())}"
    if language and language.strip():
        term = normalise_term(language)
        terms.setdefault(
            term,
            f"https://github.com/search?q={quote('language:' + language.strip())}"
            "&type=repositories&s=stars&o=desc",
        )
    return terms, None


def parse(request: SourceRequest, status: int, body: bytes, day: date) -> ParsedRows:
    data = require_object(SOURCE, load_json(SOURCE, status, body, "repository search"))
    items = require_list(SOURCE, data, "items")
    tallies: dict[str, _Tally] = {}
    skipped: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            skipped.append(f"items[{index}] is a {type_name(item)}, not an object")
            continue
        name = item.get("full_name")
        if not isinstance(name, str) or not name:
            skipped.append(f"items[{index}] has no full_name")
            continue
        stars = as_count(item.get("stargazers_count"))
        if stars is None:
            reason = describe_bad("stargazers_count", item.get("stargazers_count"))
            skipped.append(f"items[{index}] ({name}): {reason}")
            continue
        terms, problem = _repo_terms(item)
        if problem:
            skipped.append(f"items[{index}] ({name}): {problem}")
            continue
        for term, url in terms.items():
            tally = tallies.setdefault(term, _Tally(url=url))
            if name not in tally.repos:
                tally.repos.add(name)
                tally.stars += stars
    warnings = []
    if data.get("incomplete_results") is True:
        warnings.append("GitHub marked the search incomplete_results: counts may be low")
    rows = []
    for term in sorted(tallies):
        tally = tallies[term]
        rows.append(TrendRow(term, SOURCE, "new_repos", float(len(tally.repos)), day, tally.url))
        rows.append(TrendRow(term, SOURCE, "new_repo_stars", tally.stars, day, tally.url))
    return ParsedRows(rows, skipped, warnings)

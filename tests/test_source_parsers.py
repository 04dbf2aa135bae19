"""Source request builders and parsers: recorded-shape bodies, and every kind of bad body.

Recordings are read straight from `juggernaut_assets/fixtures/replay/` (no transport); the bad
bodies are built here. A parser may skip an item (and say so) or raise `SourceFormatError`;
any other exception is a bug.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from juggernaut_assets.lib.sources import (
    TREND_SOURCES,
    SourceFormatError,
    SourceRequest,
    SourceStatusError,
    TrackedItems,
    github,
    google_trends,
    hackernews,
    npm,
    pypi,
    wikipedia,
)
from juggernaut_assets.lib.sources.base import load_json
from juggernaut_assets.lib.sources.rdap import (
    normalise_status,
    parse_rdap_bootstrap,
    parse_rdap_domain,
    rdap_url,
)
from juggernaut_assets.lib.sources.wayback import parse_wayback_cdx, wayback_request

REPLAY_DIR = Path(__file__).resolve().parent.parent / "juggernaut_assets" / "fixtures" / "replay"
DAY = date(2026, 11, 23)
TRACKED = TrackedItems()
HTML_ERROR = b"<!DOCTYPE html><html><head><title>Unicorn!</title></head><body>No server is currently available to service your request.</body></html>"  # noqa: E501


def recording(source: str, name: str) -> dict[str, Any]:
    return json.loads((REPLAY_DIR / source / f"{name}.json").read_text())


def body_of(record: dict[str, Any]) -> bytes:
    if "json" in record:
        return json.dumps(record["json"]).encode()
    return record["text"].encode()


def recordings(source: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((REPLAY_DIR / source).glob("*.json"))]


def request_for(module: Any, url: str) -> SourceRequest:
    return next(r for r in module.requests_for(TRACKED, DAY) if r.url == url)


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def rows_by(rows: list, **match: Any) -> list:
    return [r for r in rows if all(getattr(r, k) == v for k, v in match.items())]


# Recordings and builders agree


@pytest.mark.parametrize("name", sorted(TREND_SOURCES))
def test_every_default_request_has_a_recording_with_its_exact_url(name: str) -> None:
    urls = {r["url"] for r in recordings(name)}
    for request in TREND_SOURCES[name].requests_for(TRACKED, DAY):
        assert request.url in urls


@pytest.mark.parametrize("name", sorted(TREND_SOURCES))
def test_every_trend_recording_parses_without_skipped_items(name: str) -> None:
    module = TREND_SOURCES[name]
    for record in recordings(name):
        rows = module.parse(
            request_for(module, record["url"]), record["status"], body_of(record), DAY
        )
        assert rows, record["url"]
        assert rows.skipped == []
        for row in rows:
            assert row.source == name
            assert row.term == row.term.lower().strip()
            assert isinstance(row.value, float)


def _undated(url: str) -> str:
    return re.sub(r"\d{4}-\d{2}-\d{2}|(?<!\d)\d{8}(?:\d{2})?(?!\d)", "{date}", url)


@pytest.mark.parametrize("name", sorted(TREND_SOURCES))
def test_requests_on_another_day_differ_from_recordings_only_in_dates(name: str) -> None:
    urls = {_undated(r["url"]) for r in recordings(name)}
    for request in TREND_SOURCES[name].requests_for(TRACKED, date(2027, 2, 9)):
        assert _undated(request.url) in urls


def test_requests_never_carry_credentials() -> None:
    for module in TREND_SOURCES.values():
        for request in module.requests_for(TRACKED, DAY):
            assert not {k.lower() for k in request.headers} & {"authorization", "cookie"}


def test_requests_can_key_a_dict() -> None:
    requests = [r for m in TREND_SOURCES.values() for r in m.requests_for(TRACKED, DAY)]
    assert len({r: r.url for r in requests}) == len(requests) == 1 + 8 + 1 + 7 + 5 + 3


def test_domain_recordings_cover_each_default_term_on_com_net_io_ai() -> None:
    bootstrap = parse_rdap_bootstrap(body_of(recording("rdap", "bootstrap")))
    rdap_urls = {r["url"] for r in recordings("rdap")}
    cdx_urls = {r["url"] for r in recordings("wayback")}
    for term in TRACKED.terms:
        for tld in ("com", "net", "io", "ai"):
            name = f"{term.replace(' ', '')}.{tld}"
            assert rdap_url(bootstrap, name) in rdap_urls
            assert wayback_request(name) in cdx_urls


def test_rdap_recordings_hold_the_intended_lifecycle_mix() -> None:
    results = [
        parse_rdap_domain(r["status"], body_of(r))
        for r in recordings("rdap")
        if r["url"].endswith(("com", "net", "io", "ai")) and "/domain/" in r["url"]
    ]
    assert len(results) == 44
    assert sum(r.available for r in results) == 6
    assert all(r.error is None for r in results)
    statuses = [set(r.normalised_statuses) for r in results]
    assert sum("redemption period" in s for s in statuses) == 2
    assert sum(s == {"pending delete"} for s in statuses) == 3
    assert sum("auto renew period" in s for s in statuses) == 1


def test_wayback_recordings_parse() -> None:
    results = {
        r["url"].split("url=")[1].split("&")[0]: parse_wayback_cdx(body_of(r))
        for r in recordings("wayback")
    }
    assert results["vectordatabase.ai"].snapshots == 0
    assert results["dagster.ai"].first_archived_year is None
    assert results["rust.com"].snapshots > 100
    assert results["rust.com"].first_archived_year is not None
    assert all(r.skipped == 0 for r in results.values())


# Shared body checks


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (HTML_ERROR, "HTML page with status 200, not JSON"),
        (b'{"items": [{"a": 1}, {"b"', "truncated JSON at char"),
        (b'{"items": [1, 2', "truncated JSON at char 15 of 15"),
        (b'{"ok": tru', "truncated JSON"),
        (b"{'items': []}", "invalid JSON at char 1"),
        (b"", "empty body with status 200"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_load_json_names_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(SourceFormatError, match=re.escape(message)):
        load_json("github", 200, body)


GARBAGE = [
    HTML_ERROR,
    b"",
    b"null",
    b"[]",
    b"{}",
    b"42",
    b'"ok"',
    b'{"items": null, "hits": null, "downloads": null, "data": null}',
    b'{"items": {}, "hits": "x", "downloads": 7, "data": []}',
    b"\x00\x01\x02",
    b"<rss><channel><item><title>x",
    b"<error>rate limited</error>",
]


@pytest.mark.parametrize("name", sorted(TREND_SOURCES))
@pytest.mark.parametrize("body", GARBAGE)
def test_garbage_bodies_are_format_errors_for_every_source(name: str, body: bytes) -> None:
    module = TREND_SOURCES[name]
    request = module.requests_for(TRACKED, DAY)[0]
    with pytest.raises(SourceFormatError):
        module.parse(request, 200, body, DAY)


@pytest.mark.parametrize("name", sorted(TREND_SOURCES))
@pytest.mark.parametrize("status", [404, 500])
def test_error_statuses_are_status_errors_for_every_source(name: str, status: int) -> None:
    module = TREND_SOURCES[name]
    request = module.requests_for(TRACKED, DAY)[0]
    with pytest.raises(SourceStatusError) as caught:
        module.parse(request, status, b"replay mode: no recorded response", DAY)
    assert caught.value.status == status
    assert "no recorded response" in str(caught.value)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list) and value:
        found += _paths(value[0], (*prefix, 0))
    return found


def _replace(value: Any, path: tuple, new: Any) -> Any:
    copied = copy.deepcopy(value)
    target = copied
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copied


def _delete(value: Any, path: tuple) -> Any:
    copied = copy.deepcopy(value)
    target = copied
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copied


@pytest.mark.parametrize("name", ["github", "hackernews", "wikipedia", "pypi", "npm"])
def test_any_wrong_type_or_missing_key_is_skipped_or_a_format_error(name: str) -> None:
    module = TREND_SOURCES[name]
    record = recordings(name)[0]
    request = request_for(module, record["url"])
    body = record["json"]
    outcomes = 0
    for path in _paths(body):
        variants = [_delete(body, path)] + [
            _replace(body, path, bad) for bad in (None, "12", -3, 1.5e308 * 10, [], {}, True)
        ]
        for variant in variants:
            with contextlib.suppress(SourceFormatError):
                module.parse(request, 200, as_json(variant), DAY)
            outcomes += 1
    assert outcomes > 20


# GitHub


def test_github_request_asks_for_seven_days_of_repos_with_min_stars() -> None:
    (request,) = github.requests_for(TrackedItems(github_min_stars=25), DAY, "http://127.0.0.1:9/")
    assert request.url.startswith("http://127.0.0.1:9/search/repositories?")
    assert "q=created%3A2026-11-17..2026-11-23+stars%3A%3E%3D25" in request.url
    assert "sort=stars" in request.url and "per_page=100" in request.url
    assert request.term is None


def _repo(name: str, stars: Any, language: Any = "Python", topics: Any = ()) -> dict:
    return {
        "full_name": name,
        "stargazers_count": stars,
        "language": language,
        "topics": topics if topics is None else list(topics),
    }


def test_github_rows_per_topic_and_language_count_each_repo_once() -> None:
    body = as_json(
        {
            "total_count": 3,
            "incomplete_results": False,
            "items": [
                _repo("a/one", 100, "Python", ["python", "ai-agents"]),
                _repo("b/two", 40, "Rust", ["ai-agents"]),
                _repo("c/three", 10, None, []),
            ],
        }
    )
    (request,) = github.requests_for(TRACKED, DAY)
    rows = github.parse(request, 200, body, DAY)
    assert rows_by(rows, term="ai agents", metric="new_repos")[0].value == 2
    assert rows_by(rows, term="ai agents", metric="new_repo_stars")[0].value == 140
    assert rows_by(rows, term="python", metric="new_repos")[0].value == 1
    assert rows_by(rows, term="rust", metric="new_repo_stars")[0].value == 40
    assert rows_by(rows, term="ai agents")[0].url == "https://github.com/topics/ai-agents"
    assert "language%3ARust" in rows_by(rows, term="rust")[0].url
    assert {r.observed_date for r in rows} == {DAY}
    assert rows.skipped == []


def test_github_recording_spikes_ai_agents() -> None:
    record = recording("github", "search_repositories")
    rows = github.parse(request_for(github, record["url"]), 200, body_of(record), DAY)
    counts = {r.term: r.value for r in rows if r.metric == "new_repos"}
    stars = {r.term: r.value for r in rows if r.metric == "new_repo_stars"}
    assert max(stars, key=stars.__getitem__) == "ai agents"
    assert {"rust", "python", "llm", "vector database", "solar", "crypto", "dagster"} <= set(counts)


def test_github_string_stargazers_count_skips_that_repo_and_counts_it() -> None:
    body = as_json(
        {"items": [_repo("a/one", "100", topics=["rust"]), _repo("b/two", 5, topics=["rust"])]}
    )
    rows = github.parse(github.requests_for(TRACKED, DAY)[0], 200, body, DAY)
    assert rows_by(rows, term="rust", metric="new_repos")[0].value == 1
    assert len(rows.skipped) == 1
    assert "a/one" in rows.skipped[0] and "stargazers_count is str '100'" in rows.skipped[0]


def test_github_bad_topics_and_non_object_items_are_skipped() -> None:
    body = as_json(
        {
            "items": [
                _repo("a/one", 3, topics=None),
                {"full_name": "b/two", "stargazers_count": 1, "topics": "rust"},
                "c/three",
                None,
            ]
        }
    )
    rows = github.parse(github.requests_for(TRACKED, DAY)[0], 200, body, DAY)
    assert [r.term for r in rows] == ["python", "python"]
    assert len(rows.skipped) == 3


def test_github_html_error_page_with_status_200_is_a_format_error() -> None:
    with pytest.raises(SourceFormatError, match="HTML page with status 200, not JSON"):
        github.parse(github.requests_for(TRACKED, DAY)[0], 200, HTML_ERROR, DAY)


def test_github_truncated_recording_is_a_format_error() -> None:
    body = body_of(recording("github", "search_repositories"))
    with pytest.raises(SourceFormatError, match="truncated JSON at char"):
        github.parse(github.requests_for(TRACKED, DAY)[0], 200, body[:812], DAY)


def test_github_missing_items_is_a_format_error() -> None:
    with pytest.raises(SourceFormatError, match="missing key items"):
        github.parse(github.requests_for(TRACKED, DAY)[0], 200, b'{"total_count": 0}', DAY)


def test_github_rate_limit_status_quotes_githubs_message() -> None:
    body = as_json(
        {"message": "API rate limit exceeded for 203.0.113.9.", "documentation_url": "x"}
    )
    with pytest.raises(SourceStatusError, match=r"HTTP 403.*API rate limit exceeded"):
        github.parse(github.requests_for(TRACKED, DAY)[0], 403, body, DAY)


def test_github_incomplete_results_is_a_warning() -> None:
    body = as_json({"incomplete_results": True, "items": [_repo("a/b", 12, topics=["llm"])]})
    rows = github.parse(github.requests_for(TRACKED, DAY)[0], 200, body, DAY)
    assert rows.warnings and "incomplete_results" in rows.warnings[0]


# Hacker News


def test_hackernews_one_request_per_term_for_one_utc_day() -> None:
    requests = hackernews.requests_for(TrackedItems(hn_min_points=5), DAY)
    assert [r.term for r in requests] == TRACKED.terms
    first = requests[0]
    assert first.url.startswith("https://hn.algolia.com/api/v1/search_by_date?query=ai+agents&")
    # 2026-11-23T00:00Z = 1795392000
    assert "created_at_i%3E%3D1795392000%2Ccreated_at_i%3C1795478400%2Cpoints%3E%3D5" in first.url
    assert "tags=story" in first.url and "hitsPerPage=100" in first.url


def test_hackernews_rows_are_nbhits_and_summed_points() -> None:
    body = as_json(
        {
            "nbHits": 3,
            "hits": [
                {"objectID": "1", "points": 10},
                {"objectID": "2", "points": 3},
                {"objectID": "3", "points": 1},
            ],
        }
    )
    request = hackernews.requests_for(TRACKED, DAY)[1]
    rows = hackernews.parse(request, 200, body, DAY)
    assert [(r.term, r.metric, r.value) for r in rows] == [
        ("rust", "stories", 3.0),
        ("rust", "points", 14.0),
    ]
    assert rows[0].url is not None and rows[0].url.startswith("https://hn.algolia.com/?")
    assert "dateStart=1795392000" in rows[0].url


def test_hackernews_null_points_skip_that_hit_and_are_counted() -> None:
    body = as_json(
        {
            "nbHits": 2,
            "hits": [{"objectID": "46012001", "points": None}, {"objectID": "2", "points": 7}],
        }
    )
    rows = hackernews.parse(hackernews.requests_for(TRACKED, DAY)[0], 200, body, DAY)
    assert rows_by(rows, metric="points")[0].value == 7
    assert rows_by(rows, metric="stories")[0].value == 2
    assert rows.skipped == ["hits[0] (objectID 46012001): points is null None, not a number"]


def test_hackernews_missing_or_string_nbhits_is_a_format_error() -> None:
    request = hackernews.requests_for(TRACKED, DAY)[0]
    with pytest.raises(SourceFormatError, match="missing key nbHits"):
        hackernews.parse(request, 200, b'{"hits": []}', DAY)
    with pytest.raises(SourceFormatError, match="nbHits is str '12', not a number"):
        hackernews.parse(request, 200, b'{"hits": [], "nbHits": "12"}', DAY)


def test_hackernews_more_stories_than_hits_warns_points_are_partial() -> None:
    body = as_json({"nbHits": 250, "hits": [{"points": 1}] * 100})
    rows = hackernews.parse(hackernews.requests_for(TRACKED, DAY)[0], 200, body, DAY)
    assert rows.warnings == ["points summed over the 100 newest of 250 stories"]


# Google Trends


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2000+", 2000),
        ("2,000+", 2000),
        ("20K+", 20_000),
        ("1M+", 1_000_000),
        ("1.5M+", 1_500_000),
        ("500", 500),
        ("lots", None),
        ("", None),
        ("+", None),
    ],
)
def test_google_trends_traffic_reads_k_m_and_commas(text: str, value: float | None) -> None:
    assert google_trends.parse_traffic(text) == value


def test_google_trends_recording_rows() -> None:
    record = recording("google_trends", "trending_rss_us")
    (request,) = google_trends.requests_for(TRACKED, DAY)
    assert request.url == "https://trends.google.com/trending/rss?geo=US"
    rows = google_trends.parse(request, 200, body_of(record), DAY)
    by_term = {r.term: r for r in rows}
    assert by_term["black friday deals"].value == 1_000_000
    assert by_term["solar tax credit"].value == 5000
    assert by_term["black friday deals"].observed_date == DAY
    # 19:20 on the 22nd in -08:00 is 03:20 UTC on the 23rd
    assert by_term["cowboys vs eagles"].observed_date == DAY
    assert by_term["solar tax credit"].observed_date == date(2026, 11, 23)
    assert by_term["python"].url is not None and by_term["python"].url.startswith("https://")
    assert all(r.metric == "approx_traffic" for r in rows)


def _rss(items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss xmlns:ht="https://trends.google.com/trending/rss" '
        f'version="2.0"><channel><title>Daily Search Trends</title>{items}</channel></rss>'
    ).encode()


def test_google_trends_bad_items_are_skipped_and_missing_pubdate_uses_day() -> None:
    body = _rss(
        "<item><title>Solar Eclipse</title><ht:approx_traffic>20K+</ht:approx_traffic></item>"
        "<item><title>no traffic</title></item>"
        "<item><title>odd</title><ht:approx_traffic>many</ht:approx_traffic></item>"
        "<item><ht:approx_traffic>100+</ht:approx_traffic></item>"
        "<item><title>x</title><ht:approx_traffic>100+</ht:approx_traffic><pubDate>yesterday</pubDate></item>"
    )
    rows = google_trends.parse(google_trends.requests_for(TRACKED, DAY)[0], 200, body, DAY)
    assert [(r.term, r.value, r.observed_date, r.url) for r in rows] == [
        ("solar eclipse", 20_000, DAY, None),
        ("x", 100, DAY, None),
    ]
    assert len(rows.skipped) == 3


def test_google_trends_duplicate_title_keeps_the_larger_traffic() -> None:
    item = "<item><title>Rust</title><ht:approx_traffic>{}</ht:approx_traffic></item>"
    body = _rss(item.format("200+") + item.format("2000+") + item.format("500+"))
    rows = google_trends.parse(google_trends.requests_for(TRACKED, DAY)[0], 200, body, DAY)
    assert [r.value for r in rows] == [2000]
    assert len(rows.warnings) == 2


def test_google_trends_html_error_page_with_status_200_is_a_format_error() -> None:
    with pytest.raises(SourceFormatError, match="HTML page with status 200, not RSS"):
        google_trends.parse(google_trends.requests_for(TRACKED, DAY)[0], 200, HTML_ERROR, DAY)


def test_google_trends_truncated_feed_is_a_format_error() -> None:
    body = body_of(recording("google_trends", "trending_rss_us"))
    with pytest.raises(SourceFormatError, match="truncated XML at line"):
        google_trends.parse(google_trends.requests_for(TRACKED, DAY)[0], 200, body[:900], DAY)


def test_google_trends_entity_expansion_is_refused() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;">]><rss><channel><item><title>&b;</title>'
        b"<ht:approx_traffic>1+</ht:approx_traffic></item></channel></rss>"
    )
    with pytest.raises(SourceFormatError, match="refused as unsafe"):
        google_trends.parse(google_trends.requests_for(TRACKED, DAY)[0], 200, body, DAY)


def test_google_trends_wrong_root_or_no_channel_is_a_format_error() -> None:
    request = google_trends.requests_for(TRACKED, DAY)[0]
    with pytest.raises(SourceFormatError, match="XML root is <feed>, not <rss>"):
        google_trends.parse(request, 200, b"<feed><entry/></feed>", DAY)
    with pytest.raises(SourceFormatError, match="RSS has no <channel>"):
        google_trends.parse(request, 200, b"<rss version='2.0'></rss>", DAY)
    with pytest.raises(SourceFormatError, match="malformed XML"):
        google_trends.parse(request, 200, b'{"items": []}', DAY)


def test_google_trends_empty_channel_is_no_rows() -> None:
    rows = google_trends.parse(google_trends.requests_for(TRACKED, DAY)[0], 200, _rss(""), DAY)
    assert rows == [] and rows.skipped == []


# Wikipedia


def test_wikipedia_requests_encode_titles_and_cover_thirty_days() -> None:
    tracked = TrackedItems(
        wikipedia_articles={"Rust (programming language)": "Rust", "AC/DC": "acdc"}
    )
    first, second = wikipedia.requests_for(tracked, DAY)
    assert first.url == (
        "https://wikimedia.org/api/rest_v1/metrics/pageviews/per-article/en.wikipedia.org/"
        "all-access/user/Rust_%28programming_language%29/daily/2026102500/2026112300"
    )
    assert first.term == "rust"
    assert "/user/AC%2FDC/daily/" in second.url
    assert "juggernaut" in first.headers["User-Agent"]


def test_wikipedia_recording_rows_follow_timestamps_and_spike_on_the_last_day() -> None:
    record = recording("wikipedia", "cryptocurrency")
    request = request_for(wikipedia, record["url"])
    rows = wikipedia.parse(request, 200, body_of(record), DAY)
    assert len(rows) == 30
    assert rows[0].observed_date == date(2026, 10, 25) and rows[-1].observed_date == DAY
    assert {r.term for r in rows} == {"crypto"}
    assert rows[-1].url == "https://en.wikipedia.org/wiki/Cryptocurrency"
    earlier = [r.value for r in rows[:-1]]
    assert rows[-1].value > 2.5 * sum(earlier) / len(earlier)


def test_wikipedia_bad_items_are_skipped() -> None:
    request = wikipedia.requests_for(TRACKED, DAY)[1]
    items = [
        {"timestamp": "2026112200", "views": 5100},
        {"timestamp": "2026112300", "views": None},
        {"timestamp": "20261123", "views": 3},
        {"timestamp": "2026133100", "views": 3},
        {"timestamp": "2026112200", "views": 1},
        "junk",
    ]
    rows = wikipedia.parse(request, 200, as_json({"items": items}), DAY)
    assert [(r.observed_date, r.value) for r in rows] == [(date(2026, 11, 22), 5100)]
    assert rows[0].url == "https://en.wikipedia.org/wiki/Rust_(programming_language)"
    assert len(rows.skipped) == 5


def test_wikipedia_not_found_quotes_the_detail() -> None:
    body = as_json(
        {
            "type": "https://mediawiki.org/wiki/HyperSwitch/errors/not_found",
            "title": "Not found.",
            "method": "get",
            "detail": "The date(s) you used are valid, but we either do not have data for those date(s), or the project you asked for is not loaded yet.",  # noqa: E501
        }
    )
    with pytest.raises(SourceStatusError, match="HTTP 404 for 'ai agents': The date"):
        wikipedia.parse(wikipedia.requests_for(TRACKED, DAY)[0], 404, body, DAY)


# PyPI


def test_pypi_recent_becomes_three_metrics_with_their_dates() -> None:
    record = recording("pypi", "dagster")
    request = request_for(pypi, record["url"])
    assert request.url == "https://pypistats.org/api/packages/dagster/recent"
    rows = pypi.parse(request, 200, body_of(record), DAY)
    assert [(r.metric, r.observed_date) for r in rows] == [
        ("downloads_last_day", date(2026, 11, 22)),
        ("downloads_last_week", DAY),
        ("downloads_last_month", DAY),
    ]
    assert rows[0].value == 98_412 and rows[0].url == "https://pypi.org/project/dagster/"


def test_pypi_package_names_are_normalised() -> None:
    (request,) = pypi.requests_for(TrackedItems(pypi_packages=["Flask_SQLAlchemy"]), DAY)
    assert request.url.endswith("/packages/flask-sqlalchemy/recent")
    assert request.term == "flask-sqlalchemy"


def test_pypi_null_count_is_skipped_and_all_missing_is_a_format_error() -> None:
    request = pypi.requests_for(TRACKED, DAY)[0]
    body = as_json({"data": {"last_day": None, "last_week": 10, "last_month": "40"}})
    rows = pypi.parse(request, 200, body, DAY)
    assert [r.metric for r in rows] == ["downloads_last_week"]
    assert len(rows.skipped) == 2
    with pytest.raises(SourceFormatError, match="no download counts"):
        pypi.parse(request, 200, as_json({"data": {}}), DAY)
    with pytest.raises(SourceFormatError, match="missing key data"):
        pypi.parse(request, 200, as_json({"package": "dagster"}), DAY)


def test_pypi_unknown_package_is_a_status_error() -> None:
    with pytest.raises(SourceStatusError, match="HTTP 404 for 'dagster': Not Found"):
        pypi.parse(pypi.requests_for(TRACKED, DAY)[0], 404, b"<html><h1>Not Found</h1></html>", DAY)


# npm


def test_npm_requests_cover_thirty_days_and_keep_scopes() -> None:
    (request,) = npm.requests_for(TrackedItems(npm_packages=["@LangChain/Core"]), DAY)
    assert (
        request.url == "https://api.npmjs.org/downloads/range/2026-10-25:2026-11-23/@langchain/core"
    )
    assert request.term == "@langchain/core"


def test_npm_recording_rows_per_day() -> None:
    record = recording("npm", "ai")
    rows = npm.parse(request_for(npm, record["url"]), 200, body_of(record), DAY)
    assert len(rows) == 30
    assert rows[-1].observed_date == DAY and rows[-1].term == "ai"
    assert rows[-1].url == "https://www.npmjs.com/package/ai"
    assert rows[-1].value > 2 * rows[-8].value


def test_npm_bad_days_are_skipped() -> None:
    body = as_json(
        {
            "downloads": [
                {"day": "2026-11-22", "downloads": 5},
                {"day": "2026-11-23", "downloads": "9"},
                {"day": None, "downloads": 1},
            ]
        }
    )
    rows = npm.parse(npm.requests_for(TRACKED, DAY)[0], 200, body, DAY)
    assert [r.value for r in rows] == [5]
    assert len(rows.skipped) == 2


def test_npm_unknown_package_quotes_the_error() -> None:
    body = as_json({"error": "package nosuchpkg-xyz not found"})
    with pytest.raises(SourceStatusError, match="package nosuchpkg-xyz not found"):
        npm.parse(npm.requests_for(TRACKED, DAY)[0], 404, body, DAY)


# Tracked items


def test_tracked_items_normalise_terms_and_article_terms() -> None:
    tracked = TrackedItems(
        terms=["  AI   Agents ", "ai agents", "Rust"], wikipedia_articles={"Rust  (x)": " RUST "}
    )
    assert tracked.terms == ["ai agents", "rust"]
    assert tracked.wikipedia_articles == {"Rust (x)": "rust"}
    assert len(TRACKED.terms) == 8 and set(TRACKED.wikipedia_articles.values()) <= set(
        TRACKED.terms
    )


# RDAP


def test_rdap_bootstrap_prefers_https_and_ends_bases_with_a_slash() -> None:
    body = as_json(
        {
            "services": [
                [["COM", "net"], ["http://rdap.example/v1", "https://rdap.example/v1"]],
                [["org"], ["http://rdap.org.example/rdap"]],
                [["bad"]],
                "junk",
                [["io"], [None, 3]],
            ]
        }
    )
    assert parse_rdap_bootstrap(body) == {
        "com": "https://rdap.example/v1/",
        "net": "https://rdap.example/v1/",
        "org": "http://rdap.org.example/rdap/",
    }


@pytest.mark.parametrize(
    "body", [HTML_ERROR, b'{"services": []}', b'{"version": "1.0"}', b'{"services": [[["c']
)
def test_rdap_bootstrap_without_services_is_a_format_error(body: bytes) -> None:
    with pytest.raises(SourceFormatError):
        parse_rdap_bootstrap(body)


def test_rdap_url_picks_the_server_for_the_tld() -> None:
    bootstrap = parse_rdap_bootstrap(body_of(recording("rdap", "bootstrap")))
    assert set(bootstrap) >= {"com", "net", "org", "io", "ai", "dev", "app"}
    assert (
        rdap_url(bootstrap, "AIAgents.COM.")
        == "https://rdap.verisign.com/com/v1/domain/aiagents.com"
    )
    assert (
        rdap_url(bootstrap, "dagster.io")
        == "https://rdap.identitydigital.services/rdap/domain/dagster.io"
    )
    assert (
        rdap_url(bootstrap, "bücher.dev")
        == "https://pubapi.registry.google/rdap/domain/xn--bcher-kva.dev"
    )
    assert rdap_url(bootstrap, "example.zz") is None
    assert rdap_url(bootstrap, "localhost") is None
    assert rdap_url(bootstrap, "bad..name.com") is None


def test_rdap_not_found_is_unregistered_without_error() -> None:
    result = parse_rdap_domain(404, b"")
    assert not result.registered and result.error is None and result.available


def test_rdap_redemption_recording_reads_statuses_and_dates() -> None:
    record = recording("rdap", "aiagents_net")
    result = parse_rdap_domain(record["status"], body_of(record))
    assert result.registered and not result.available
    assert result.statuses == ["pending delete", "redemption period"]
    assert result.ldh_name == "aiagents.net"
    assert result.expiration_date == date(2026, 9, 28)
    assert result.registration_date == date(2023, 9, 28)
    assert result.last_changed == date(2026, 11, 6)


def test_rdap_epp_camel_case_statuses_are_normalised() -> None:
    record = recording("rdap", "aiagents_ai")
    result = parse_rdap_domain(200, body_of(record))
    assert result.statuses == ["clientTransferProhibited", "clientUpdateProhibited"]
    assert result.normalised_statuses == ["client transfer prohibited", "client update prohibited"]
    assert normalise_status("Redemption Period") == "redemption period"
    assert normalise_status("autoRenewPeriod") == "auto renew period"


def test_rdap_non_domain_object_is_a_format_error() -> None:
    body = as_json({"objectClassName": "entity", "handle": "292"})
    with pytest.raises(SourceFormatError, match="objectClassName is 'entity', not 'domain'"):
        parse_rdap_domain(200, body)


def test_rdap_html_error_page_with_status_200_is_a_format_error() -> None:
    with pytest.raises(SourceFormatError, match="HTML page with status 200, not JSON"):
        parse_rdap_domain(200, HTML_ERROR)


def test_rdap_truncated_recording_is_a_format_error() -> None:
    body = body_of(recording("rdap", "rust_com"))
    with pytest.raises(SourceFormatError, match="truncated JSON"):
        parse_rdap_domain(200, body[: len(body) // 2])


@pytest.mark.parametrize("status", [429, 500, 503, 302])
def test_rdap_rate_limit_and_server_errors_come_back_as_error_text(status: int) -> None:
    result = parse_rdap_domain(status, b'{"errorCode": 429, "title": "Too Many Requests"}')
    assert not result.registered and not result.available
    assert result.error is not None and result.error.startswith(f"HTTP {status}")


def test_rdap_error_object_in_a_200_is_read() -> None:
    assert parse_rdap_domain(200, b'{"errorCode": 404, "title": "Not Found"}').available
    result = parse_rdap_domain(200, b'{"errorCode": 400, "title": "Bad Request"}')
    assert result.error == "RDAP error 400: Bad Request"


def test_rdap_wrong_types_are_skipped_or_format_errors() -> None:
    body = {
        "objectClassName": "domain",
        "ldhName": 7,
        "status": "active",
        "events": [
            {"eventAction": "expiration", "eventDate": "soon"},
            {"eventAction": None},
            {"eventAction": "registration", "eventDate": "2001-02-03T04:05:06.789+05:00"},
        ],
    }
    result = parse_rdap_domain(200, as_json(body))
    assert result.statuses == ["active"] and result.ldh_name is None
    assert result.expiration_date is None and result.registration_date == date(2001, 2, 2)
    assert len(result.skipped) == 2
    with pytest.raises(SourceFormatError, match="events is a dict, not a list"):
        parse_rdap_domain(200, as_json({**body, "events": {}}))
    with pytest.raises(SourceFormatError, match="status is a int, not a list"):
        parse_rdap_domain(200, as_json({**body, "status": 5}))


# Wayback


def test_wayback_request_shape() -> None:
    assert wayback_request("Dagster.io", "http://127.0.0.1:9", 50) == (
        "http://127.0.0.1:9/cdx/search/cdx?url=dagster.io&output=json&fl=timestamp,statuscode"
        "&filter=statuscode:200&collapse=timestamp:6&limit=50"
    )


def test_wayback_counts_rows_after_the_header() -> None:
    body = as_json(
        [
            ["timestamp", "statuscode"],
            ["20040612000000", "200"],
            ["19990101000000", "200"],
            ["bad"],
            [None, "200"],
        ]
    )
    result = parse_wayback_cdx(body)
    assert (result.snapshots, result.first_archived_year, result.skipped) == (2, 1999, 2)


@pytest.mark.parametrize("body", [b"", b"  \n", b"[]", b'[["timestamp", "statuscode"]]'])
def test_wayback_empty_answers_are_zero_snapshots(body: bytes) -> None:
    assert parse_wayback_cdx(body).snapshots == 0
    assert parse_wayback_cdx(body).first_archived_year is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (HTML_ERROR, "HTML page"),
        (b'[["timestamp", "statuscode"], ["2004', "truncated JSON"),
        (b'{"error": "x"}', "not a list"),
        (b'[["original", "statuscode"], ["x", "200"]]', "not a header with timestamp"),
        (b"com,dagster)/ 20190101000000 200", "invalid JSON"),
    ],
)
def test_wayback_malformed_answers_are_format_errors(body: bytes, message: str) -> None:
    with pytest.raises(SourceFormatError, match=message):
        parse_wayback_cdx(body)


def test_wayback_error_status_is_a_status_error() -> None:
    with pytest.raises(SourceStatusError, match="HTTP 503"):
        parse_wayback_cdx(b"<html>Service Unavailable</html>", status=503)

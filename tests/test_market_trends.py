"""`market_trends` and `trend_scores` through the real httpx client, against a local server that
answers like the public sources (recorded responses, and hand-built bad ones)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from juggernaut_assets.assets.expired_domains import expired_domains
from juggernaut_assets.assets.market_trends import (
    DAILY_FRESHNESS,
    market_trends,
    market_trends_schedule,
    observations_check,
    trend_scores,
)
from juggernaut_assets.definitions import defs
from juggernaut_assets.lib.sources.base import Source, SourceRequest
from juggernaut_assets.lib.trends import OBSERVATION_SCHEMA
from juggernaut_assets.resources.http_sources import HttpSources, retry_after_seconds
from juggernaut_assets.resources.polars_io import PolarsParquetIOManager
from tests.fakes.sources_server import Reply, SourcesServer

DAY = "2026-11-23"
TOKEN = "test-token-not-a-credential"


@pytest.fixture
def sources_server() -> Iterator[SourcesServer]:
    with SourcesServer() as server:
        yield server


def http(server: SourcesServer | None = None, **overrides) -> HttpSources:
    settings = {"seconds_between_requests": 0.0, "backoff_seconds": 0.01, "max_attempts": 3}
    if server is None:
        return HttpSources(mode="replay", **{**settings, **overrides})
    return HttpSources(base_urls=server.base_urls(), **{**settings, **overrides})


def scan(tmp_path: Path, client: HttpSources, partition: str = DAY, **config):
    result = dg.materialize(
        [market_trends],
        partition_key=partition,
        resources={
            "http_sources": client,
            "io_manager": PolarsParquetIOManager(base_path=str(tmp_path / "assets")),
        },
        run_config={"ops": {"market_trends": {"config": config}}} if config else None,
        raise_on_error=False,
    )
    return result


def metadata(result) -> dict:
    [materialization] = result.asset_materializations_for_node("market_trends")
    return {k: v.value for k, v in materialization.metadata.items()}


def test_scan_reads_every_source_through_the_real_client(tmp_path, sources_server):
    result = scan(tmp_path, http(sources_server))
    assert result.success
    meta = metadata(result)
    assert meta["source_mode"] == "live"
    assert meta["sources_ok"] == 6
    frame = result.output_for_node("market_trends")
    assert set(frame["source"]) == {s.value for s in Source if s not in ("rdap", "wayback")}
    assert frame.columns == [
        "term",
        "source",
        "metric",
        "value",
        "observed_date",
        "url",
        "fetched_at",
    ]
    assert frame.filter(pl.col("source") == "wikipedia")["observed_date"].n_unique() == 30
    [check] = result.get_asset_check_evaluations()
    assert check.passed


def test_rate_limited_source_is_retried_after_its_retry_after(tmp_path, sources_server):
    sources_server.fail_next(
        "github", Reply(429, {"message": "slow down"}, {"Retry-After": "0"}), Reply(503, "busy")
    )
    result = scan(tmp_path, http(sources_server), sources=["github"])
    assert result.success
    assert metadata(result)["outcomes"]["github"]["errors"] == 0
    assert len(sources_server.requests_to("github")) == 3


def test_a_retry_after_longer_than_the_limit_ends_with_an_error_instead_of_waiting(
    tmp_path, sources_server
):
    sources_server.break_source("pypi", Reply(429, "rate limited", {"Retry-After": "3600"}))
    result = scan(tmp_path, http(sources_server, max_wait_seconds=5), sources=["pypi", "npm"])
    assert result.success
    outcome = metadata(result)["outcomes"]["pypi"]
    assert outcome["http_statuses"] == {"429": 5}
    assert "HTTP 429" in outcome["first_errors"][0]
    assert len(sources_server.requests_to("pypi")) == 5


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, b"<!DOCTYPE html><html><body>Service unavailable</body></html>"), "HTML"),
        (Reply(200, b'{"total_count": 3, "items": [{"full_name": "a/b", "stargaz'), "truncated"),
        (Reply(200, b"not json at all"), "invalid JSON"),
        (Reply(404, {"message": "Not Found"}), "HTTP 404"),
    ],
    ids=["html-page-200", "truncated", "garbage", "not-found"],
)
def test_one_bad_source_is_reported_and_the_others_still_land(
    tmp_path, sources_server, reply, expected
):
    sources_server.break_source("github", reply)
    result = scan(tmp_path, http(sources_server))
    assert result.success
    meta = metadata(result)
    assert meta["sources_ok"] == 5
    assert expected in meta["sources_failed"]["github"][0]
    assert "github" not in set(result.output_for_node("market_trends")["source"])


def test_broken_rss_is_a_source_error(tmp_path, sources_server):
    sources_server.break_source("google_trends", Reply(200, b"<rss><channel><item><title>x"))
    result = scan(tmp_path, http(sources_server), sources=["google_trends", "pypi"])
    assert result.success
    assert metadata(result)["sources_failed"]["google_trends"]


def test_every_source_failing_fails_the_scan_with_each_error(tmp_path, sources_server):
    for source in ("github", "hackernews", "npm"):
        sources_server.break_source(source, Reply(500, "internal error"))
    result = scan(tmp_path, http(sources_server), sources=["github", "hackernews", "npm"])
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    for source in ("github", "hackernews", "npm"):
        assert f"- {source}: " in message


def test_github_token_goes_to_github_only(tmp_path, sources_server):
    client = http(sources_server, github_token=TOKEN, github_api_url=sources_server.url)
    result = scan(tmp_path, client, sources=["github", "npm"])
    assert result.success
    [github] = sources_server.requests_to("github")
    assert github.headers["Authorization"] == f"Bearer {TOKEN}"
    assert all("Authorization" not in r.headers for r in sources_server.requests_to("npm"))
    assert TOKEN not in str(metadata(result))


def test_operator_contact_is_in_every_user_agent(tmp_path, sources_server):
    contact = "ops@example.org"
    result = scan(tmp_path, http(sources_server, contact=contact), sources=["wikipedia", "npm"])
    assert result.success
    agents = {r.headers["User-Agent"] for r in sources_server.received}
    assert agents and all(a.endswith(f"contact: {contact}") for a in agents)
    assert any(a.startswith("juggernaut-assets/0.1 (market-trend") for a in agents)


def test_unknown_source_in_config_fails_with_the_known_ones(tmp_path):
    result = scan(tmp_path, http(), sources=["github", "reddit"])
    assert not result.success


def test_replay_mode_reads_bundled_recordings_and_says_so(tmp_path):
    result = scan(tmp_path, http())
    assert result.success
    meta = metadata(result)
    assert meta["source_mode"] == "replay" and meta["sources_ok"] == 6


def test_replay_without_a_recording_is_a_source_error(tmp_path):
    result = scan(tmp_path, http(), sources=["pypi", "npm"], pypi_packages=["left-pad-xyz"])
    assert result.success
    assert "replay mode: no recorded response" in metadata(result)["sources_failed"]["pypi"][0]


def test_fetch_all_keeps_order_and_reports_transport_errors(sources_server):
    sources = http(sources_server, max_attempts=2, timeout_seconds=2)
    requests = [
        SourceRequest("npm", sources_server.serve("/plain", Reply(200, "ok"))),
        SourceRequest("npm", "http://127.0.0.1:9/closed-port"),
    ]
    first, second = sources.fetch_all(requests)
    assert first.ok and first.body == b"ok"
    assert second.status is None and second.attempts == 2 and "ConnectError" in second.error


def test_trend_scores_read_every_stored_partition(tmp_path):
    io_manager = PolarsParquetIOManager(base_path=str(tmp_path / "assets"))
    with dg.instance_for_test() as instance:
        for day in ("2026-11-22", DAY):
            assert dg.materialize(
                [market_trends],
                partition_key=day,
                resources={"http_sources": http(), "io_manager": io_manager},
                instance=instance,
            ).success
        result = dg.materialize(
            [market_trends, trend_scores],
            selection=[trend_scores],
            resources={"http_sources": http(), "io_manager": io_manager},
            instance=instance,
        )
    assert result.success
    scores = result.output_for_node("trend_scores")
    assert scores.select("term", "source", "metric").is_unique().all()
    assert scores["sources_agreeing"].max() >= 1
    ranked = scores.unique("term", maintain_order=True)["sources_agreeing"].to_list()
    assert ranked == sorted(ranked, reverse=True)


def _observations(**overrides) -> pl.DataFrame:
    row = {
        "term": "rust",
        "source": "hackernews",
        "metric": "stories",
        "value": 3.0,
        "observed_date": date(2026, 11, 23),
        "url": None,
        "fetched_at": datetime(2026, 11, 24, tzinfo=UTC),
    }
    return pl.DataFrame([row, {**row, **overrides}], schema=OBSERVATION_SCHEMA)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({}, "1 duplicate observations"),
        ({"metric": "points", "value": float("inf")}, "1 non-finite or negative values"),
        ({"metric": "points", "value": -1.0}, "1 non-finite or negative values"),
        ({"term": " "}, "1 empty terms"),
    ],
    ids=["duplicate", "infinite", "negative", "empty-term"],
)
def test_observation_check_names_what_is_wrong(overrides, problem):
    result = observations_check(_observations(**overrides))
    assert not result.passed
    assert problem in result.metadata["problems"].value
    assert observations_check(_observations(metric="points")).passed


def test_daily_schedule_scans_yesterday_once_it_is_complete():
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    )
    schedule = defs.resolve_schedule_def(market_trends_schedule.name)
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-23"
    assert schedule.cron_schedule == "0 6 * * *"


def test_trend_assets_carry_a_daily_freshness_policy():
    for asset in (market_trends, expired_domains):
        assert asset.specs_by_key[asset.key].freshness_policy == DAILY_FRESHNESS


def test_retry_after_accepts_seconds_and_http_dates():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert 100 < retry_after_seconds(httpx.Response(429, headers={"Retry-After": later})) <= 120
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Response(503)) is None

"""`expired_domains` end to end: drop lists and trend names → RDAP (through IANA's bootstrap)
and Wayback on a local server speaking their protocols → scores → approval-gated tasks."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from juggernaut_assets.assets.expired_domains import TASK_TYPE, expired_domains
from juggernaut_assets.assets.market_trends import market_trends, trend_scores
from juggernaut_assets.db.models import DomainCheck, GovernanceTask
from juggernaut_assets.domains.candidates import matched_terms, term_label, trend_candidates
from juggernaut_assets.resources.http_sources import HttpSources
from juggernaut_assets.resources.polars_io import PolarsParquetIOManager
from juggernaut_assets.tasks.claim import claim_tasks
from tests.fakes.sources_server import Reply, SourcesServer

ASSETS = [market_trends, trend_scores, expired_domains]
DROP_LIST = "\n".join(
    [
        "# expiring this week",
        "solar.io",
        "aiagents.net",
        "not a domain!!",
        "-bad-.com",
        "bücher.de",
        "solar.io",
        "",
    ]
)


@pytest.fixture
def server() -> Iterator[SourcesServer]:
    with SourcesServer() as s:
        yield s


class Platform:
    """The three assets on one instance, with every source pointed at the local server."""

    def __init__(self, server: SourcesServer, governance_db, tmp_path) -> None:
        self.server = server
        self.db = governance_db
        self.resources = {
            "http_sources": HttpSources(
                base_urls=server.base_urls(),
                seconds_between_requests=0.0,
                backoff_seconds=0.01,
                max_attempts=2,
            ),
            "io_manager": PolarsParquetIOManager(base_path=str(tmp_path / "assets")),
            "governance_db": governance_db,
        }
        self.instance = dg.DagsterInstance.ephemeral()
        for key in ("market_trends", "trend_scores"):
            selection = [market_trends if key == "market_trends" else trend_scores]
            assert dg.materialize(
                ASSETS,
                selection=selection,
                partition_key="2026-11-23" if key == "market_trends" else None,
                resources=self.resources,
                instance=self.instance,
            ).success

    def domains(self, **config) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            ASSETS,
            selection=[expired_domains],
            resources=self.resources,
            instance=self.instance,
            run_config={"ops": {"expired_domains": {"config": config}}},
            raise_on_error=False,
        )


@pytest.fixture
def platform(server, governance_db, tmp_path) -> Platform:
    return Platform(server, governance_db, tmp_path)


def meta(result) -> dict:
    [materialization] = result.asset_materializations_for_node("expired_domains")
    return {k: v.value for k, v in materialization.metadata.items()}


def tasks(db) -> list[GovernanceTask]:
    with db.session() as session:
        return list(
            session.scalars(sa.select(GovernanceTask).where(GovernanceTask.task_type == TASK_TYPE))
        )


def test_trend_names_are_checked_scored_and_good_ones_wait_for_approval(platform):
    result = platform.domains(tlds=["com", "net", "io"], top_terms=5, task_threshold=60)
    assert result.success
    frame = result.output_for_node("expired_domains")
    assert frame["domain"].is_unique().all()
    assert {"score_length", "score_timing", "score_archive"} <= set(frame.columns)
    solar = frame.filter(pl.col("domain") == "solar.io").row(0, named=True)
    assert solar["registered"] is True and solar["rdap_status"] == ["pending delete"]
    assert solar["estimated_drop_date"] is not None and solar["wayback_snapshots"] > 0
    assert solar["matched_terms"] == ["solar"]
    worth = frame.filter((pl.col("score") >= 60) & pl.col("error").is_null())
    created = tasks(platform.db)
    assert sorted(t.payload["domain"] for t in created) == sorted(worth["domain"])
    for task in created:
        assert task.requires_approval and "$20.00" in task.approval_reason
        assert task.payload["evidence"]["score"] >= 60
    assert all(c.passed for c in result.get_asset_check_evaluations())

    claim_tasks(platform.db.engine, limit=100, batch_size=10)
    for task in tasks(platform.db):
        assert task.status == "waiting_approval"
        assert task.error_message.startswith("spends money: registering")


def test_a_second_run_reuses_cached_lookups_and_creates_no_duplicate_tasks(platform):
    listed = platform.server.serve(
        "/lists/names.txt", Reply(200, "solar.io\naiagents.net\naiagents.io\nrust.com\n")
    )
    first = platform.domains(drop_lists=[listed], top_terms=0)
    assert meta(first)["lookups_made"] == 4 and meta(first)["tasks_created"] >= 1
    lookups = len(platform.server.requests_to("rdap"))
    second = platform.domains(drop_lists=[listed], top_terms=0)
    assert second.success
    assert len(platform.server.requests_to("rdap")) == lookups
    assert meta(second)["lookups_made"] == 0
    assert meta(second)["tasks_created"] == 0
    assert meta(second)["tasks_already_open"] == meta(first)["tasks_created"]
    assert len(tasks(platform.db)) == meta(first)["tasks_created"]


def test_drop_list_junk_lines_and_idn_names_become_row_errors(platform, tmp_path):
    url = platform.server.serve("/lists/drop.txt", Reply(200, DROP_LIST))
    csv = tmp_path / "list.csv"
    csv.write_text("Domain,price\nvectordatabase.net,12\nsolar.io,3\n")
    result = platform.domains(drop_lists=[url, str(csv)], top_terms=0)
    assert result.success
    frame = result.output_for_node("expired_domains")
    errors = dict(frame.filter(pl.col("error").is_not_null()).select("domain", "error").iter_rows())
    assert set(errors) == {"not a domain!!", "-bad-.com", "xn--bcher-kva.de"}
    assert "no RDAP server for .de" in errors["xn--bcher-kva.de"]
    assert set(frame.filter(pl.col("error").is_null())["domain"]) == {
        "solar.io",
        "aiagents.net",
        "vectordatabase.net",
    }
    assert frame.filter(pl.col("domain") == "solar.io")["source"].item() == url


def test_unreadable_drop_lists_are_reported_and_the_rest_still_runs(platform, tmp_path):
    broken = platform.server.serve("/lists/broken.txt", Reply(500, "oops"))
    html = platform.server.serve(
        "/lists/login.txt", Reply(200, b"<!DOCTYPE html><html><body>Sign in</body></html>")
    )
    result = platform.domains(
        drop_lists=[broken, html, str(tmp_path / "missing.txt")], top_terms=1, tlds=["com"]
    )
    assert result.success
    listed = meta(result)["drop_list_errors"]
    assert "HTTP 500" in listed[broken] and "cannot read" in listed[str(tmp_path / "missing.txt")]
    frame = result.output_for_node("expired_domains")
    assert "HTML" in frame.filter(pl.col("source") == html)["error"].item()


def test_rate_limited_rdap_is_a_row_error_that_is_not_cached(platform):
    platform.server.break_source("rdap", Reply(429, "slow down", {"Retry-After": "0"}))
    result = platform.domains(top_terms=2, tlds=["com"])
    assert result.success
    frame = result.output_for_node("expired_domains")
    assert frame["error"].str.contains("HTTP 429").all()
    assert meta(result)["tasks_created"] == 0
    del platform.server.broken["rdap"]
    again = platform.domains(top_terms=2, tlds=["com"])
    assert meta(again)["lookups_made"] == frame.height
    assert again.output_for_node("expired_domains")["error"].is_null().all()


def test_an_html_page_from_rdap_is_a_row_error(platform):
    platform.server.break_source("rdap", Reply(200, b"<html><body>Maintenance</body></html>"))
    result = platform.domains(top_terms=1, tlds=["com"])
    assert result.success
    assert "HTML" in result.output_for_node("expired_domains")["error"].item()


def test_without_the_rdap_bootstrap_every_name_says_why(platform):
    platform.server.serve("/rdap_bootstrap", Reply(200, b'{"services": "nope"'))
    result = platform.domains(top_terms=2, tlds=["com", "net"])
    assert result.success
    errors = result.output_for_node("expired_domains")["error"]
    assert errors.str.contains("bootstrap unavailable").all()


def test_lookups_over_the_limit_are_deferred(platform, governance_db):
    result = platform.domains(top_terms=3, tlds=["com", "net"], max_lookups=2)
    assert result.success
    assert meta(result)["lookups_deferred"] == 4
    frame = result.output_for_node("expired_domains")
    assert frame["error"].str.contains("deferred").sum() == 4
    with governance_db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(DomainCheck)) == 2


def test_term_labels_and_matches():
    assert term_label("AI Agents!") == "aiagents"
    built = trend_candidates(["vector database"], ["com", ".IO"])
    assert built["domain"].to_list() == ["vectordatabase.com", "vectordatabase.io"]
    matched = matched_terms(pl.Series(["solarpython.com", "x.io"]), ["python", "solar", "rust"])
    assert matched.to_list() == [["python", "solar"], []]

"""`market_trends` (daily partitions) and `trend_scores`: what the public web talks about."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pydantic

from juggernaut_assets.assets.governance import OWNERS
from juggernaut_assets.execution.scan import scan_provenance
from juggernaut_assets.lib import trends
from juggernaut_assets.lib.sources import TREND_SOURCES, TrackedItems
from juggernaut_assets.lib.trend_collect import collect_observations
from juggernaut_assets.resources.http_sources import HttpSources
from juggernaut_assets.resources.polars_io import documented_columns, markdown_table

TRENDS_START = "2026-11-01"
daily = dg.DailyPartitionsDefinition(start_date=TRENDS_START)
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=30), warn_window=timedelta(hours=26)
)
"""Daily data: a warning after 26 hours without a materialization, a failure after 30."""
OBSERVATION_COLUMNS = tuple(trends.OBSERVATION_SCHEMA)
TRACKED = TrackedItems()
PARAMS = trends.TrendParams()
OBSERVED = {
    "term": "What is trending: a topic, story term, search, article or package.",
    "source": f"Where it was observed: {', '.join(TREND_SOURCES)}.",
    "metric": "What was counted (e.g. new_repos, points, pageviews, downloads, approx_traffic).",
    "value": "The count on that day.",
    "observed_date": "The day the value is for.",
    "url": "The source's page for this term.",
    "fetched_at": "When the value was fetched (the latest fetch of a day wins).",
}
OBSERVATIONS_DOC = {name: (trends.OBSERVATION_SCHEMA[name], OBSERVED[name]) for name in OBSERVED}
SCORES_DOC = {
    **OBSERVATIONS_DOC,
    "history": (pl.Int64(), f"Days observed in the trailing {PARAMS.window_days}-day window."),
    "z_score": (
        pl.Float64(),
        "The day's value against that window (null with fewer than "
        f"{PARAMS.min_history} days of history).",
    ),
    "growth": (
        pl.Float64(),
        f"Growth of the last {PARAMS.growth_days} days' sum over the {PARAMS.growth_days} "
        "before (null while the series is younger than both).",
    ),
    "ewma": (pl.Float64(), f"Exponentially weighted mean of the series (span {PARAMS.ewma_span})."),
    "agrees": (
        pl.Boolean(),
        f"This series trends: z_score ≥ {PARAMS.agree_z} or growth ≥ {PARAMS.agree_growth}.",
    ),
    "sources_agreeing": (pl.Int64(), "Per term: how many sources have a series that trends."),
    "term_score": (pl.Float64(), "Per term: its best z_score (the ranking's second key)."),
    "term_growth": (pl.Float64(), "Per term: its best growth (breaks ties)."),
}


class MarketTrendsConfig(dg.Config):
    """What to track and which sources to ask; the defaults are `TrackedItems()`'s
    (`lib/sources/tracked.py`), which also validates and normalises what is given here."""

    sources: list[str] = pydantic.Field(default_factory=lambda: list(TREND_SOURCES))
    terms: list[str] = pydantic.Field(default_factory=lambda: list(TRACKED.terms))
    wikipedia_articles: dict[str, str] = pydantic.Field(
        default_factory=lambda: dict(TRACKED.wikipedia_articles)
    )
    pypi_packages: list[str] = pydantic.Field(default_factory=lambda: list(TRACKED.pypi_packages))
    npm_packages: list[str] = pydantic.Field(default_factory=lambda: list(TRACKED.npm_packages))
    github_min_stars: int = TRACKED.github_min_stars
    hn_min_points: int = TRACKED.hn_min_points
    google_trends_geo: str = TRACKED.google_trends_geo
    wikipedia_project: str = TRACKED.wikipedia_project

    def tracked(self) -> TrackedItems:
        return TrackedItems(**self.model_dump(exclude={"sources"}))


def _source_report(outcomes: dict) -> str:
    rows = [
        {
            "source": name,
            "rows": o.rows,
            "requests": o.requests,
            "http": ", ".join(f"{k}×{v}" for k, v in sorted(o.statuses.items())) or "-",
            "errors": len(o.errors),
            "first error": o.errors[0] if o.errors else "",
        }
        for name, o in sorted(outcomes.items())
    ]
    return markdown_table(pl.DataFrame(rows))


@dg.asset(
    partitions_def=daily,
    freshness_policy=DAILY_FRESHNESS,
    group_name="trends",
    kinds={"polars"},
    owners=OWNERS,
    metadata=documented_columns(OBSERVATIONS_DOC),
    check_specs=[
        dg.AssetCheckSpec(
            "observations_are_valid",
            asset="market_trends",
            description=(
                "Columns as documented, every value finite and non-negative, no empty term, "
                "and one value per term, source, metric and day; fails listing the problems."
            ),
        )
    ],
)
def market_trends(
    context: dg.AssetExecutionContext, config: MarketTrendsConfig, http_sources: HttpSources
):
    """Trend observations from keyless public sources, one partition per day.

    One row per observation (term, source, metric, value and day). Sources (config
    `sources`): GitHub repository search (new repositories by stars, per topic and language),
    Hacker News via Algolia (stories and points per tracked term), the Google Trends RSS feed,
    Wikipedia pageviews of tracked articles (30 days), PyPI and npm download counts of tracked
    packages. What is tracked is run config, not code.

    Each source's outcome (rows, HTTP statuses, errors) is in the metadata. One failing source
    does not fail the scan; all failing does, with every source's error in the message.
    `source_mode` says whether the data is `live` or `replay` (bundled recordings).
    """
    day = date.fromisoformat(context.partition_key)
    tracked = config.tracked()
    unknown = sorted(set(config.sources) - set(TREND_SOURCES))
    if unknown:
        raise dg.Failure(f"unknown sources {unknown}; known: {sorted(TREND_SOURCES)}")
    requests = [
        request
        for name in config.sources
        for request in TREND_SOURCES[name].requests_for(
            tracked, day, http_sources.base_url(name, TREND_SOURCES[name].DEFAULT_BASE)
        )
    ]
    fetched = http_sources.fetch_all(requests)
    frame, outcomes = collect_observations(fetched, day, datetime.now(UTC), sources=config.sources)
    report = _source_report(outcomes)
    failed = [o for o in outcomes.values() if o.failed]
    if outcomes and len(failed) == len(outcomes):
        errors = "\n".join(f"- {o.source}: {'; '.join(o.errors[:3])}" for o in failed)
        raise dg.Failure(
            description=f"every source failed:\n{errors}",
            metadata={"sources": dg.MetadataValue.md(report)},
        )
    yield dg.Output(
        frame.sort("source", "term", "metric", "observed_date"),
        metadata={
            "source_mode": http_sources.mode.value,
            "sources": dg.MetadataValue.md(report),
            "sources_ok": len(outcomes) - len(failed),
            "sources_failed": dg.MetadataValue.json(
                {o.source: o.errors[:5] for o in outcomes.values() if o.errors}
            ),
            "terms": frame["term"].n_unique(),
            "outcomes": dg.MetadataValue.json({k: o.summary() for k, o in outcomes.items()}),
            **scan_provenance(context.run.tags),
        },
    )
    yield observations_check(frame)


def observations_check(frame: pl.DataFrame) -> dg.AssetCheckResult:
    """Columns as documented, finite non-negative values, no empty terms, one value a key."""
    problems = []
    if tuple(frame.columns) != OBSERVATION_COLUMNS:
        problems.append(f"columns {frame.columns}")
    bad_values = frame.filter(~pl.col("value").is_finite() | (pl.col("value") < 0)).height
    if bad_values:
        problems.append(f"{bad_values} non-finite or negative values")
    empty_terms = frame.filter(pl.col("term").str.strip_chars() == "").height
    if empty_terms:
        problems.append(f"{empty_terms} empty terms")
    duplicates = frame.height - frame.select("term", "source", "metric", "observed_date").n_unique()
    if duplicates:
        problems.append(f"{duplicates} duplicate observations")
    return dg.AssetCheckResult(
        check_name="observations_are_valid",
        passed=not problems,
        metadata={"rows": frame.height, "problems": "; ".join(problems) or "none"},
    )


class TrendScoresConfig(dg.Config):
    """Windows and thresholds of the trend math (defaults: `lib/trends.py`'s `TrendParams`)."""

    window_days: int = PARAMS.window_days
    min_history: int = PARAMS.min_history
    growth_days: int = PARAMS.growth_days
    ewma_span: int = PARAMS.ewma_span
    agree_z: float = PARAMS.agree_z
    agree_growth: float = PARAMS.agree_growth


@dg.asset(
    group_name="trends",
    kinds={"polars"},
    owners=OWNERS,
    metadata=documented_columns(SCORES_DOC),
    ins={"market_trends": dg.AssetIn(metadata={"allow_missing_partitions": True})},
)
def trend_scores(
    context: dg.AssetExecutionContext,
    config: TrendScoresConfig,
    market_trends: dict[str, pl.DataFrame],
) -> dg.MaterializeResult:
    """Per term × source × metric, the latest day's z-score (against a trailing window that
    excludes it), 7-day growth and EWMA, computed in polars across every stored
    `market_trends` partition; per term, `sources_agreeing` (sources whose series trends) and
    `term_score`. Rows are ranked best term first; `expired_domains` builds names from the top.
    """
    observations = [f for f in market_trends.values() if f.height]
    if not observations:
        raise dg.Failure("no market_trends observations stored yet: materialise a partition first")
    frame = pl.concat(observations, how="vertical_relaxed")
    scores = trends.trend_scores(frame.lazy(), trends.TrendParams(**config.model_dump()))
    top = scores.unique("term", maintain_order=True).head(10)
    return dg.MaterializeResult(
        value=scores,
        metadata={
            "partitions_read": len(market_trends),
            "terms": scores["term"].n_unique(),
            "top_terms": dg.MetadataValue.md(
                markdown_table(top.select("term", "sources_agreeing", "term_score", "term_growth"))
            ),
            **scan_provenance(context.run.tags),
        },
    )


market_trends_job = dg.define_asset_job(
    "market_trends_job",
    selection=dg.AssetSelection.assets("market_trends"),
    description="Scan every trend source for one day.",
)

market_trends_schedule = dg.build_schedule_from_partitioned_job(
    market_trends_job,
    hour_of_day=6,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 06:00 UTC: yesterday's partition (complete by then).",
)

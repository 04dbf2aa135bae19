"""Trend math on hand-built series: z-score against the trailing window, growth, EWMA, agreement."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from juggernaut_assets.lib.trends import (
    OBSERVATION_SCHEMA,
    TrendParams,
    series_statistics,
    top_terms,
    trend_scores,
)

DAY = date(2026, 11, 1)
FETCHED = datetime(2026, 11, 24, tzinfo=UTC)


def observations(*series: tuple[str, str, str, list[float | None]], skip: int | None = None):
    rows = []
    for term, source, metric, values in series:
        for offset, value in enumerate(values):
            if value is None or offset == skip:
                continue
            rows.append(
                {
                    "term": term,
                    "source": source,
                    "metric": metric,
                    "value": value,
                    "observed_date": DAY + timedelta(days=offset),
                    "url": None,
                    "fetched_at": FETCHED,
                }
            )
    return pl.DataFrame(rows, schema=OBSERVATION_SCHEMA).lazy()


def test_z_score_excludes_the_day_itself_from_its_window():
    stats = series_statistics(
        observations(("rust", "hackernews", "stories", [10, 12, 8, 10, 30])), TrendParams()
    ).collect()
    last = stats.row(-1, named=True)
    assert last["history"] == 4
    assert last["z_score"] == pytest.approx(20 / math.sqrt(8 / 3))


def test_z_score_needs_enough_history():
    stats = series_statistics(
        observations(("rust", "hackernews", "stories", [10, 12, 30])), TrendParams(min_history=3)
    ).collect()
    assert stats["z_score"].to_list() == [None, None, None]


def test_flat_history_gives_a_large_finite_z_not_a_division_by_zero():
    stats = series_statistics(
        observations(("rust", "hackernews", "stories", [5, 5, 5, 5, 6])), TrendParams()
    ).collect()
    z = stats["z_score"][-1]
    assert math.isfinite(z) and z > 1e6


def test_growth_compares_seven_day_sums():
    values = [1.0] * 7 + [3.0] * 7
    stats = series_statistics(
        observations(("solar", "wikipedia", "pageviews", values)), TrendParams()
    ).collect()
    assert stats["growth"][-1] == pytest.approx((21 - 7) / 7)


def test_growth_from_an_empty_week_divides_by_at_least_one():
    stats = series_statistics(
        observations(("solar", "npm", "downloads", [0.0] * 13 + [0.5])), TrendParams()
    ).collect()
    assert stats["growth"][-1] == pytest.approx(0.5)


def test_growth_is_null_until_the_series_covers_both_weeks():
    stats = series_statistics(
        observations(("solar", "npm", "downloads", [1.0] * 13)), TrendParams()
    ).collect()
    assert stats["growth"].null_count() == 13


def test_ewma_uses_alpha_two_over_span_plus_one():
    stats = series_statistics(
        observations(("rust", "hackernews", "stories", [10, 12, 8, 10, 30])),
        TrendParams(ewma_span=3),
    ).collect()
    assert stats["ewma"].to_list() == pytest.approx([10, 11, 9.5, 9.75, 19.875])


def test_a_missing_day_is_a_gap_not_a_zero():
    stats = series_statistics(
        observations(("rust", "hackernews", "stories", [10, 12, 8, 10, 11]), skip=2),
        TrendParams(),
    ).collect()
    last = stats.row(-1, named=True)
    assert last["history"] == 3
    assert last["z_score"] == pytest.approx((11 - 32 / 3) / pl.Series([10, 12, 10]).std())


def test_a_refetched_day_keeps_the_latest_value():
    first = observations(("rust", "github", "new_repos", [4, 4, 4, 4])).collect()
    again = first.tail(1).with_columns(
        value=pl.lit(9.0), fetched_at=pl.lit(FETCHED + timedelta(hours=1))
    )
    stats = series_statistics(pl.concat([first, again]).lazy(), TrendParams()).collect()
    assert stats.height == 4 and stats["value"][-1] == 9.0


def test_sources_agreeing_counts_sources_not_metrics():
    spike = [10, 11, 9, 10, 10, 11, 9, 40]
    flat = [10, 11, 9, 10, 10, 11, 9, 10]
    scores = trend_scores(
        observations(
            ("rust", "hackernews", "stories", spike),
            ("rust", "hackernews", "points", spike),
            ("rust", "wikipedia", "pageviews", spike),
            ("python", "pypi", "downloads_last_day", flat),
        )
    )
    by_term = dict(scores.select("term", "sources_agreeing").unique().iter_rows())
    assert by_term == {"rust": 2, "python": 0}
    assert top_terms(scores, 1) == ["rust"]
    assert scores.height == 4

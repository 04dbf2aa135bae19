"""Trend math over `market_trends` observations: pure polars, one function per step.

A *series* is one `(term, source, metric)`; its observations are daily. Days with no
observation are gaps, not zeros (a failed fetch must not look like a collapse), so windows are
by date (`rolling_*_by`), not by row count.

- **z-score** of a day against the trailing `window_days` before it (the day itself excluded:
  `closed="left"`), with the standard deviation floored at `EPSILON`; null with fewer than
  `min_history` earlier observations in the window.
- **growth** over `growth_days` on sums over `growth_days`:
  `(s_t − s_{t−k}) / max(s_{t−k}, 1)`; null until the series goes back 2k days (a young
  series would otherwise "grow" from an empty window).
- **EWMA** with α = 2 / (span + 1), over the series' observations in date order.
- A source **agrees** that a term trends when one of its series for the term has, on its
  latest day, z ≥ `agree_z` or growth ≥ `agree_growth`; `sources_agreeing` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

EPSILON = 1e-9
SERIES = ("term", "source", "metric")
OBSERVATION_SCHEMA = {
    "term": pl.String,
    "source": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "observed_date": pl.Date,
    "url": pl.String,
    "fetched_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class TrendParams:
    window_days: int = 28
    min_history: int = 3
    growth_days: int = 7
    ewma_span: int = 7
    agree_z: float = 2.0
    agree_growth: float = 0.5


def latest_observations(observations: pl.LazyFrame) -> pl.LazyFrame:
    """One row per series and day: the most recently fetched value wins (re-runs, overlaps)."""
    return (
        observations.sort("fetched_at")
        .unique(subset=[*SERIES, "observed_date"], keep="last")
        .sort([*SERIES, "observed_date"])
    )


def series_statistics(observations: pl.LazyFrame, params: TrendParams) -> pl.LazyFrame:
    """Every observation with its z-score, growth and EWMA (see the module docstring)."""
    by = "observed_date"
    window, k, twice_k = (
        f"{d}d" for d in (params.window_days, params.growth_days, 2 * params.growth_days)
    )
    value = pl.col("value")

    def per_series(expr: pl.Expr) -> pl.Expr:
        return expr.over(SERIES)

    sum_now = per_series(value.rolling_sum_by(by, k))
    sum_before = per_series(value.rolling_sum_by(by, twice_k)) - sum_now
    history = per_series(
        value.is_not_null().cast(pl.Int64).rolling_sum_by(by, window, closed="left")
    )
    mean = per_series(value.rolling_mean_by(by, window, closed="left"))
    std = per_series(value.rolling_std_by(by, window, closed="left")).fill_nan(None)
    first_day = pl.col(by).min().over(SERIES)
    covered = first_day <= pl.col(by) - pl.duration(days=2 * params.growth_days - 1)
    z = (value - mean) / pl.max_horizontal(std.fill_null(0.0), pl.lit(EPSILON))
    return latest_observations(observations).with_columns(
        history=history.fill_null(0),
        z_score=pl.when(history >= params.min_history).then(z),
        growth=pl.when(covered).then(
            (sum_now - sum_before) / pl.max_horizontal(sum_before, pl.lit(1.0))
        ),
        ewma=per_series(value.ewm_mean(span=params.ewma_span, adjust=False)),
    )


def trend_scores(observations: pl.LazyFrame, params: TrendParams = TrendParams()) -> pl.DataFrame:
    """Per series, its latest day with z-score, growth and EWMA; per term, how many sources
    agree it trends and a `term_score` (the best z-score, growth breaking ties), ranked."""
    latest = (
        series_statistics(observations, params)
        .filter(pl.col("observed_date") == pl.col("observed_date").max().over(SERIES))
        .with_columns(
            agrees=(pl.col("z_score").fill_null(float("-inf")) >= params.agree_z)
            | (pl.col("growth").fill_null(float("-inf")) >= params.agree_growth)
        )
    )
    agreeing = (
        latest.filter("agrees").group_by("term").agg(sources_agreeing=pl.col("source").n_unique())
    )
    return (
        latest.join(agreeing, on="term", how="left")
        .with_columns(
            pl.col("sources_agreeing").fill_null(0).cast(pl.Int64),
            term_score=pl.col("z_score").max().over("term"),
            term_growth=pl.col("growth").max().over("term"),
        )
        .sort(
            ["sources_agreeing", "term_score", "term_growth", "term", "source", "metric"],
            descending=[True, True, True, False, False, False],
            nulls_last=True,
        )
        .collect()
    )


def top_terms(scores: pl.DataFrame, limit: int) -> list[str]:
    """The `limit` best-ranked terms of `trend_scores` (one entry per term, rank order)."""
    return scores["term"].unique(maintain_order=True).head(limit).to_list()

"""Experiment statistics against hand-computed values, scipy and the published check."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from juggernaut_assets.lib.experiments.stats import (
    SUFFICIENT_COLUMNS,
    bayesian,
    experiment_metrics_frame,
    srm_p_values,
    sufficient_statistics,
    welch_t_test,
)

POINT_SCHEMA = {
    "experiment_id": pl.String,
    "variant": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "denominator": pl.Float64,
    "covariate": pl.Float64,
}


def points(variant, values, *, experiment="e1", metric="m", den=None, cov=None):
    n = len(values)
    return pl.DataFrame(
        {
            "experiment_id": [experiment] * n,
            "variant": [variant] * n,
            "metric": [metric] * n,
            "value": list(map(float, values)),
            "denominator": list(map(float, den)) if den is not None else [None] * n,
            "covariate": list(map(float, cov)) if cov is not None else [None] * n,
        },
        schema=POINT_SCHEMA,
    )


def arms(*variants, experiment="e1", weights=None):
    weights = weights or [None] * len(variants)
    return pl.DataFrame(
        {
            "experiment_id": [experiment] * len(variants),
            "variant": list(variants),
            "is_control": [v == "control" for v in variants],
            "weight": weights,
        },
        schema={
            "experiment_id": pl.String,
            "variant": pl.String,
            "is_control": pl.Boolean,
            "weight": pl.Float64,
        },
    )


def metrics(frames, arm_frame, metric_type="mean"):
    suff = sufficient_statistics(pl.concat(frames).lazy()).collect()
    return experiment_metrics_frame(suff.with_columns(metric_type=pl.lit(metric_type)), arm_frame)


def row(frame, variant):
    return frame.filter(pl.col("variant") == variant).row(0, named=True)


def test_published_binomial_check():
    control = points("control", [1] * 1000 + [0] * 9000)
    treat = points("treat", [1] * 1100 + [0] * 8900)
    result = row(metrics([control, treat], arms("control", "treat"), "binomial"), "treat")
    assert result["lift_rel"] == pytest.approx(0.10, abs=1e-12)
    assert result["p_value"] == pytest.approx(0.028, abs=5e-4)
    assert result["variance"] == pytest.approx(0.11 * 0.89)
    assert result["ci_low"] > 0 and result["chance_to_beat_control"] > 0.95
    assert result["seq_ci_low"] < result["ci_low"] and result["seq_p_value"] > result["p_value"]


def test_welch_matches_scipy():
    rng = np.random.default_rng(7)
    a, b = rng.normal(10, 3, 400), rng.normal(10.6, 5, 250)
    t, df, p = welch_t_test(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(expected.statistic, abs=1e-6)
    assert p == pytest.approx(expected.pvalue, abs=1e-6)
    assert df == pytest.approx(expected.df, abs=1e-6)


def test_mean_and_variance_from_sufficient_statistics_match_numpy():
    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 30.0, 500)
    frame = metrics(
        [points("control", values), points("t", values[:300] * 1.1)], arms("control", "t")
    )
    control = row(frame, "control")
    assert control["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert control["variance"] == pytest.approx(values.var(ddof=1), rel=1e-9)


def test_srm_matches_scipy_and_flags_an_empty_arm():
    counts = pl.DataFrame(
        {
            "experiment_id": ["a", "a", "b", "b", "b"],
            "variant": ["c", "t", "c", "t", "u"],
            "units": [5000, 5200, 800, 0, 790],
            "weight": [50.0, 50.0, None, None, None],
        }
    )
    result = dict(srm_p_values(counts).iter_rows())
    assert result["a"] == pytest.approx(stats.chisquare([5000, 5200]).pvalue, abs=1e-9)
    assert result["b"] < 0.001


def test_ratio_metric_uses_the_delta_method():
    num = [2.0, 4.0, 3.0, 5.0, 1.0]
    den = [1.0, 2.0, 2.0, 2.0, 1.0]
    frame = metrics(
        [points("control", num, den=den), points("t", [x * 2 for x in num], den=den)],
        arms("control", "t"),
        "ratio",
    )
    n, m, d = 5, np.array(num), np.array(den)
    mm, md = m.mean(), d.mean()
    vm, vd, c = m.var(ddof=1), d.var(ddof=1), np.cov(m, d, ddof=1)[0, 1]
    expected = vm / md**2 + vd * mm**2 / md**4 - 2 * c * mm / md**3
    control = row(frame, "control")
    assert control["mean"] == pytest.approx(mm / md)
    assert control["variance"] == pytest.approx(expected)
    assert row(frame, "t")["lift_rel"] == pytest.approx(1.0)
    assert n == control["n"]


def test_cuped_uses_the_pooled_within_arm_slope_and_narrows_the_test():
    rng = np.random.default_rng(11)
    pre_c, pre_t = rng.normal(50, 10, 2000), rng.normal(50, 10, 2000)
    post_c = pre_c * 0.9 + rng.normal(0, 3, 2000)
    post_t = pre_t * 0.9 + rng.normal(1.0, 3, 2000)
    frame = metrics(
        [points("control", post_c, cov=pre_c), points("t", post_t, cov=pre_t)], arms("control", "t")
    )
    t = row(frame, "t")
    cov_sum = np.cov(post_c, pre_c)[0, 1] + np.cov(post_t, pre_t)[0, 1]
    theta = cov_sum / (pre_c.var(ddof=1) + pre_t.var(ddof=1))
    assert t["cuped_theta"] == pytest.approx(theta, rel=1e-9)
    assert t["cuped_p_value"] < t["p_value"]


def test_bayesian_chance_is_one_half_at_zero_lift_and_risk_matches_formula():
    chance, risk = bayesian(np.array([0.0, 0.05]), np.array([0.02, 0.02]))
    assert chance[0] == pytest.approx(0.5)
    precision = 1 / 0.02**2 + 1 / 0.3**2
    mean, sd = (0.05 / 0.02**2) / precision, math.sqrt(1 / precision)
    z = mean / sd
    assert chance[1] == pytest.approx(stats.norm.cdf(z))
    assert risk[1] == pytest.approx(sd * stats.norm.pdf(z) - mean * stats.norm.cdf(-z))


def test_bad_input_becomes_a_status_not_an_exception():
    frames = [
        points("control", [1.0, 2.0, float("nan"), float("inf"), 3.0]),
        points("t", [5.0, 5.0, 5.0]),
        points("ghost", [1.0, 2.0]),
        points("control", [1.0, 2.0], experiment="e2"),
        points("t", [2.0, 3.0], experiment="e2"),
        points("control", [4.0, 4.0], experiment="e3"),
        points("t", [4.0, 4.0], experiment="e3"),
    ]
    arm_frame = pl.concat(
        [
            arms("control", "t", "empty"),
            arms("a", "t", experiment="e2").with_columns(is_control=pl.lit(False)),
            arms("control", "t", experiment="e3"),
        ]
    )
    frame = metrics(frames, arm_frame)
    assert row(frame, "control")["invalid_values"] == 2
    assert row(frame, "control")["n"] == 3
    assert row(frame, "empty")["status"] == "no_data"
    assert "ghost" not in frame["variant"].to_list()
    assert set(frame.filter(pl.col("experiment_id") == "e2")["status"]) == {
        "missing_control",
        "no_data",
    }
    assert set(frame.filter(pl.col("experiment_id") == "e3")["status"]) == {"zero_variance"}
    assert (
        frame.filter(pl.col("status") != "ok")["p_value"].null_count()
        == frame.filter(pl.col("status") != "ok").height
    )


def test_negative_denominators_are_left_out():
    frame = metrics(
        [
            points("control", [1.0, 2.0, 3.0], den=[1.0, -1.0, 1.0]),
            points("t", [1.0, 2.0, 3.0], den=[1.0, 1.0, 1.0]),
        ],
        arms("control", "t"),
        "ratio",
    )
    control = row(frame, "control")
    assert (control["n"], control["invalid_values"], control["mean"]) == (2, 1, 2.0)


def test_database_aggregation_matches_polars_and_counts_bad_rows(governance_db):
    """Both database passes (plain sums, and filtered sums for experiments with bad rows)
    agree with the polars aggregation of the same points."""
    from juggernaut_assets.assets.experiments import load_sufficient_statistics
    from juggernaut_assets.db.models import ExperimentMetricPoint, new_id

    clean, dirty = new_id(), new_id()
    rows = [
        (clean, "control", 1.0, None, 2.0),
        (clean, "control", 3.0, None, 1.0),
        (clean, "t", 4.0, None, None),
        (dirty, "control", 2.0, 1.0, None),
        (dirty, "control", float("nan"), 1.0, None),
        (dirty, "control", float("inf"), 1.0, None),
        (dirty, "control", 5.0, -2.0, None),
        (dirty, "t", None, None, None),
        (dirty, "t", 7.0, 2.0, 3.0),
    ]
    with governance_db.session() as s:
        s.add_all(
            ExperimentMetricPoint(
                experiment_id=e,
                metric_name="m",
                variant=v,
                metric_value=x,
                denominator=d,
                covariate=c,
            )
            for e, v, x, d, c in rows
        )
    from_db = load_sufficient_statistics(governance_db.engine).drop("point_metric_type")
    expected = sufficient_statistics(
        pl.DataFrame(
            [(e, v, "m", x, d, c) for e, v, x, d, c in rows], schema=POINT_SCHEMA, orient="row"
        ).lazy()
    ).collect()
    key = ["experiment_id", "variant", "metric"]
    joined = from_db.sort(key).join(expected.sort(key), on=key, suffix="_polars")
    assert joined.height == 4
    for column in SUFFICIENT_COLUMNS:
        assert joined[column].fill_null(0).to_list() == pytest.approx(
            joined[f"{column}_polars"].fill_null(0).to_list()
        ), column
    dirty_control = joined.filter(
        (pl.col("experiment_id") == dirty) & (pl.col("variant") == "control")
    )
    assert (dirty_control["n"].item(), dirty_control["invalid_values"].item()) == (1, 3)

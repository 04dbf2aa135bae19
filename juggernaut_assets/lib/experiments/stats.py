"""Experiment statistics over sufficient statistics, as polars expressions (GrowthBook's gbstats
conventions, shared/sources.md). Pure functions: frames in, frames out.

Per variant: `n, mean, variance` (binomial `p(1-p)`; ratio metrics by the delta method). Against
the control of the same experiment and metric: absolute and relative lift; a Welch interval and
two-sided p-value on the relative lift (delta-method variance, Welch–Satterthwaite df); a
Bayesian chance to beat control and risk (expected relative loss) under a Gaussian prior
N(0, 0.3²) on the relative lift; an always-valid sequential interval and p-value (normal-mixture
boundary, tuning N* = 5000) so results may be watched daily; CUPED-adjusted estimates when a
covariate is present (θ pooled within arms). Per experiment: a sample-ratio-mismatch χ² p-value.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import polars as pl


def _scipy():  # type: ignore[no-untyped-def]
    """`scipy.stats`, imported on first use: it is most of a run worker's import time (~0.8 s)
    and only experiment assets need it."""
    from scipy import stats

    return stats


ALPHA = 0.05
PRIOR_SD = 0.3
SEQUENTIAL_TUNING = 5_000
SRM_THRESHOLD = 0.001
_EPS = 1e-12


class MetricType(StrEnum):
    BINOMIAL = "binomial"
    MEAN = "mean"
    RATIO = "ratio"


class RowStatus(StrEnum):
    OK = "ok"
    INSUFFICIENT_DATA = "insufficient_data"
    ZERO_VARIANCE = "zero_variance"
    MISSING_CONTROL = "missing_control"
    NO_DATA = "no_data"
    INVALID_DENOMINATOR = "invalid_denominator"


SUFFICIENT_COLUMNS = {
    "n": pl.Int64,
    "sum": pl.Float64,
    "sum_sq": pl.Float64,
    "den_sum": pl.Float64,
    "den_sum_sq": pl.Float64,
    "num_den_sum": pl.Float64,
    "cov_n": pl.Int64,
    "cov_sum": pl.Float64,
    "cov_sum_sq": pl.Float64,
    "num_cov_sum": pl.Float64,
    "invalid_values": pl.Int64,
}


def sufficient_statistics(points: pl.LazyFrame) -> pl.LazyFrame:
    """Aggregate raw points (`experiment_id, variant, metric, value, denominator, covariate`)
    to sufficient statistics per experiment × variant × metric, lazily.

    Missing or non-finite values and negative denominators are counted in `invalid_values` and
    left out.
    """
    value, den, cov = pl.col("value"), pl.col("denominator"), pl.col("covariate")
    valid = (value.is_finite() & (den.is_null() | (den.is_finite() & (den >= 0)))).fill_null(False)
    keep = pl.when(valid)
    v = keep.then(value)
    d = keep.then(den)
    c = keep.then(pl.when(cov.is_finite()).then(cov))
    return points.group_by("experiment_id", "variant", "metric").agg(
        n=valid.sum().cast(pl.Int64),
        sum=v.sum(),
        sum_sq=(v * v).sum(),
        den_sum=d.sum(),
        den_sum_sq=(d * d).sum(),
        num_den_sum=(v * d).sum(),
        cov_n=c.count().cast(pl.Int64),
        cov_sum=c.sum(),
        cov_sum_sq=(c * c).sum(),
        num_cov_sum=(v * c).sum(),
        invalid_values=(~valid).sum().cast(pl.Int64),
    )


def _sample_var(total: pl.Expr, squares: pl.Expr, n: pl.Expr) -> pl.Expr:
    return pl.when(n > 1).then((squares - total * total / n) / (n - 1)).otherwise(None)


def _sample_cov(a_b: pl.Expr, a: pl.Expr, b: pl.Expr, n: pl.Expr) -> pl.Expr:
    return pl.when(n > 1).then((a_b - a * b / n) / (n - 1)).otherwise(None)


def arm_moments(suff: pl.DataFrame) -> pl.DataFrame:
    """Mean and variance per arm (delta method for ratios), plus CUPED adjustment."""
    n = pl.col("n").cast(pl.Float64)
    mean_num = pl.col("sum") / n
    var_num = _sample_var(pl.col("sum"), pl.col("sum_sq"), n)
    mean_den = pl.col("den_sum") / n
    var_den = _sample_var(pl.col("den_sum"), pl.col("den_sum_sq"), n)
    cov_nd = _sample_cov(pl.col("num_den_sum"), pl.col("sum"), pl.col("den_sum"), n)
    ratio_mean = mean_num / mean_den
    ratio_var = (
        var_num / mean_den**2
        + var_den * mean_num**2 / mean_den**4
        - 2 * cov_nd * mean_num / mean_den**3
    )
    metric_type = pl.col("metric_type")
    frame = suff.with_columns(
        mean=pl.when(metric_type == MetricType.RATIO).then(ratio_mean).otherwise(mean_num),
        variance=pl.when(metric_type == MetricType.BINOMIAL)
        .then(mean_num * (1 - mean_num))
        .when(metric_type == MetricType.RATIO)
        .then(ratio_var)
        .otherwise(var_num),
        pre_mean=pl.col("cov_sum") / pl.col("cov_n"),
        pre_var=_sample_var(pl.col("cov_sum"), pl.col("cov_sum_sq"), pl.col("cov_n")),
        pre_cov=_sample_cov(pl.col("num_cov_sum"), pl.col("sum"), pl.col("cov_sum"), n),
    )
    group = ["experiment_id", "metric"]
    has_cov = (pl.col("cov_n") == pl.col("n")) & (pl.col("n") > 1)
    weight = pl.col("n") - 1
    pooled = frame.with_columns(
        cuped_theta=pl.when(has_cov.all().over(group))
        .then(
            (pl.col("pre_cov") * weight).sum().over(group)
            / (pl.col("pre_var") * weight).sum().over(group).clip(lower_bound=_EPS)
        )
        .otherwise(None),
        pre_mean_all=pl.col("cov_sum").sum().over(group) / pl.col("cov_n").sum().over(group),
    )
    theta = pl.col("cuped_theta")
    return pooled.with_columns(
        cuped_mean=pl.col("mean") - theta * (pl.col("pre_mean") - pl.col("pre_mean_all")),
        cuped_variance=pl.col("variance")
        + theta**2 * pl.col("pre_var")
        - 2 * theta * pl.col("pre_cov"),
    ).drop("pre_mean_all")


def _relative_test(
    mean: np.ndarray,
    var: np.ndarray,
    n: np.ndarray,
    mean_c: np.ndarray,
    var_c: np.ndarray,
    n_c: np.ndarray,
) -> dict[str, np.ndarray]:
    """Relative lift, its delta-method se, Welch df, CI and p (vectorised, NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = (mean - mean_c) / mean_c
        var_rel = var / (mean_c**2 * n) + var_c * mean**2 / (mean_c**4 * n_c)
        se = np.sqrt(var_rel)
        a, b = var / n, var_c / n_c
        df = (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (n_c - 1))
        t = lift / se
        p = 2 * _scipy().t.sf(np.abs(t), df)
        half = _scipy().t.ppf(1 - ALPHA / 2, df) * se
    return {
        "lift_rel": lift,
        "se": se,
        "df": df,
        "p_value": p,
        "ci_low": lift - half,
        "ci_high": lift + half,
    }


def welch_t_test(
    mean: float, var: float, n: float, mean_c: float, var_c: float, n_c: float
) -> tuple[float, float, float]:
    """Welch's test of the absolute difference: (t, df, two-sided p), as scipy computes it."""
    a, b = var / n, var_c / n_c
    t = (mean - mean_c) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (n_c - 1))
    return t, df, float(2 * _scipy().t.sf(abs(t), df))


def bayesian(
    lift: np.ndarray, se: np.ndarray, prior_sd: float = PRIOR_SD
) -> tuple[np.ndarray, np.ndarray]:
    """Chance to beat control P(Δ > 0 | data) and risk E[max(−Δ, 0)], Gaussian prior N(0, τ²)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = 1 / se**2 + 1 / prior_sd**2
        post_mean = (lift / se**2) / precision
        post_sd = np.sqrt(1 / precision)
        z = post_mean / post_sd
    chance = _scipy().norm.cdf(z)
    risk = post_sd * _scipy().norm.pdf(z) - post_mean * _scipy().norm.cdf(-z)
    return chance, risk


def _rho(alpha: float = ALPHA, tuning: int = SEQUENTIAL_TUNING) -> float:
    log_term = -2 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1)) / tuning)


def sequential_halfwidth(
    se: np.ndarray, n_total: np.ndarray, alpha: np.ndarray | float
) -> np.ndarray:
    """Half-width of the always-valid interval (gbstats, Waudby-Smith et al. 2023)."""
    nr2 = n_total * _rho() ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return se * np.sqrt((2 * (nr2 + 1) / nr2) * np.log(np.sqrt(nr2 + 1) / alpha))


def sequential_p_value(lift: np.ndarray, se: np.ndarray, n_total: np.ndarray) -> np.ndarray:
    """The smallest α whose always-valid interval excludes 0 (bisection on log α)."""
    low = np.full(lift.shape, math.log(1e-300))
    high = np.zeros(lift.shape)
    target = np.abs(lift)
    for _ in range(80):
        mid = (low + high) / 2
        excludes = sequential_halfwidth(se, n_total, np.exp(mid)) < target
        high = np.where(excludes, mid, high)
        low = np.where(excludes, low, mid)
    p = np.exp(high)
    return np.where(np.isfinite(lift) & np.isfinite(se), np.minimum(p, 1.0), np.nan)


def srm_p_values(arms: pl.DataFrame) -> pl.DataFrame:
    """χ² goodness of fit of units per arm against configured weights, per experiment.

    `arms`: `experiment_id, variant, units, weight` with every configured arm (0 units too).
    Weights that are all missing mean an equal split.
    """
    rows = []
    for (experiment_id,), group in arms.group_by("experiment_id"):
        units = group["units"].fill_null(0).to_numpy().astype(float)
        weights = group["weight"].to_numpy().astype(float)
        if np.isnan(weights).all() or weights.sum() <= 0:
            weights = np.ones_like(units)
        weights = np.nan_to_num(weights, nan=0.0)
        total = units.sum()
        p = float("nan")
        if len(units) > 1 and total > 0:
            expected = total * weights / weights.sum()
            p = float(_scipy().chisquare(units, expected).pvalue)
        rows.append({"experiment_id": experiment_id, "srm_p_value": p})
    return pl.DataFrame(rows, schema={"experiment_id": pl.String, "srm_p_value": pl.Float64})


def compare_to_control(moments: pl.DataFrame) -> pl.DataFrame:
    """Lift, intervals, p-values, Bayesian and sequential results against each control."""
    group = ["experiment_id", "metric"]
    control = moments.filter(pl.col("is_control")).select(
        *group,
        mean_c=pl.col("mean"),
        var_c=pl.col("variance"),
        n_c=pl.col("n"),
        cuped_mean_c=pl.col("cuped_mean"),
        cuped_var_c=pl.col("cuped_variance"),
    )
    joined = moments.join(control, on=group, how="left")
    arr = {
        c: joined[c].cast(pl.Float64).to_numpy()
        for c in ["mean", "variance", "n", "mean_c", "var_c", "n_c"]
    }
    rel = _relative_test(
        arr["mean"], arr["variance"], arr["n"], arr["mean_c"], arr["var_c"], arr["n_c"]
    )
    chance, risk = bayesian(rel["lift_rel"], rel["se"])
    n_total = arr["n"] + arr["n_c"]
    half = sequential_halfwidth(rel["se"], n_total, ALPHA)
    cuped = {
        c: joined[c].cast(pl.Float64).to_numpy()
        for c in ["cuped_mean", "cuped_variance", "cuped_mean_c", "cuped_var_c"]
    }
    cuped_rel = _relative_test(
        cuped["cuped_mean"],
        cuped["cuped_variance"],
        arr["n"],
        arr["mean_c"],
        cuped["cuped_var_c"],
        arr["n_c"],
    )
    with np.errstate(invalid="ignore"):
        cuped_lift = (cuped["cuped_mean"] - cuped["cuped_mean_c"]) / arr["mean_c"]
    return joined.with_columns(
        lift_abs=pl.col("mean") - pl.col("mean_c"),
        lift_rel=rel["lift_rel"],
        ci_low=rel["ci_low"],
        ci_high=rel["ci_high"],
        p_value=rel["p_value"],
        chance_to_beat_control=chance,
        risk=risk,
        seq_ci_low=rel["lift_rel"] - half,
        seq_ci_high=rel["lift_rel"] + half,
        seq_p_value=sequential_p_value(rel["lift_rel"], rel["se"], n_total),
        cuped_lift_rel=cuped_lift,
        cuped_p_value=cuped_rel["p_value"],
    )


COMPARISON_COLUMNS = [
    "lift_abs",
    "lift_rel",
    "ci_low",
    "ci_high",
    "p_value",
    "chance_to_beat_control",
    "risk",
    "seq_ci_low",
    "seq_ci_high",
    "seq_p_value",
    "cuped_lift_rel",
    "cuped_p_value",
]


def row_status() -> pl.Expr:
    """Why a row's numbers can or cannot be trusted."""
    return (
        pl.when(pl.col("n") == 0)
        .then(pl.lit(RowStatus.NO_DATA.value))
        .when(pl.col("has_control").not_())
        .then(pl.lit(RowStatus.MISSING_CONTROL.value))
        .when((pl.col("metric_type") == MetricType.RATIO) & ~(pl.col("den_sum") > 0))
        .then(pl.lit(RowStatus.INVALID_DENOMINATOR.value))
        .when((pl.col("n") < 2) | (pl.col("n_c").fill_null(0) < 2))
        .then(pl.lit(RowStatus.INSUFFICIENT_DATA.value))
        .when(
            (pl.col("variance").fill_nan(0).fill_null(0) <= 0)
            & (pl.col("var_c").fill_nan(0).fill_null(0) <= 0)
        )
        .then(pl.lit(RowStatus.ZERO_VARIANCE.value))
        .otherwise(pl.lit(RowStatus.OK.value))
    )


def experiment_metrics_frame(suff: pl.DataFrame, arms: pl.DataFrame) -> pl.DataFrame:
    """The `experiment_metrics` table from sufficient statistics and the configured arms.

    `suff`: one row per experiment × variant × metric with `SUFFICIENT_COLUMNS` and
    `metric_type`. `arms`: `experiment_id, variant, is_control, weight` for every configured
    variant. Points for unknown variants are dropped (reported by the caller); configured arms
    without points get `n = 0` and status `no_data`.
    """
    metrics = suff.select("experiment_id", "metric", "metric_type").unique(
        ["experiment_id", "metric"]
    )
    grid = arms.join(metrics, on="experiment_id", how="inner")
    full = grid.join(
        suff.drop("metric_type"), on=["experiment_id", "variant", "metric"], how="left"
    ).with_columns([pl.col(c).fill_null(0) for c in ("n", "cov_n", "invalid_values")])
    moments = arm_moments(full).with_columns(
        has_control=pl.col("is_control").any().over("experiment_id", "metric")
    )
    compared = compare_to_control(moments)
    units = full.group_by("experiment_id", "variant").agg(units=pl.col("n").max())
    srm = srm_p_values(arms.join(units, on=["experiment_id", "variant"], how="left"))
    control = pl.col("is_control")
    return (
        compared.join(srm, on="experiment_id", how="left")
        .with_columns(status=row_status())
        .with_columns(
            [
                pl.when(control | (pl.col("status") != RowStatus.OK.value))
                .then(None)
                .otherwise(pl.col(c).fill_nan(None))
                .alias(c)
                for c in COMPARISON_COLUMNS
            ]
        )
        .with_columns(
            mean=pl.col("mean").fill_nan(None),
            variance=pl.col("variance").fill_nan(None),
            srm_flag=pl.col("srm_p_value") < SRM_THRESHOLD,
        )
        .select(
            "experiment_id",
            "variant",
            "metric",
            "metric_type",
            "is_control",
            "n",
            "mean",
            "variance",
            *COMPARISON_COLUMNS,
            "cuped_theta",
            "srm_p_value",
            "srm_flag",
            "invalid_values",
            "status",
        )
        .sort("experiment_id", "metric", "variant")
    )

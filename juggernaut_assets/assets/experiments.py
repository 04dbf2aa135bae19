"""`experiment_metrics`: per experiment × variant × metric statistics, from the database."""

from collections.abc import Sequence

import dagster as dg
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.assets.governance import OWNERS, experiment_metric_points
from juggernaut_assets.db.models import Experiment, ExperimentMetricPoint, ExperimentVariant
from juggernaut_assets.db.rollups import COUNTS, metric_sums, rollups_installed
from juggernaut_assets.db.rollups import KEYS as ROLLUP_KEYS
from juggernaut_assets.execution.scan import scan_provenance
from juggernaut_assets.lib.experiments.stats import (
    SUFFICIENT_COLUMNS,
    MetricType,
    RowStatus,
    experiment_metrics_frame,
)
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.polars_io import documented_columns, markdown_table

P = ExperimentMetricPoint.__table__
V = ExperimentVariant.__table__
E = Experiment.__table__
FINITE = 1e308
GOAL_BASED = "goal_based"


def _sum(expr: sa.ColumnElement, ok: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.sum(sa.case((ok, expr)))


STATISTICS_SCHEMA = {
    "experiment_id": pl.String,
    "variant": pl.String,
    "metric": pl.String,
    "point_metric_type": pl.String,
    **SUFFICIENT_COLUMNS,
}
GROUP = (P.c.experiment_id, P.c.variant, P.c.metric_name)


def _keys() -> list[sa.ColumnElement]:
    return [
        sa.cast(P.c.experiment_id, sa.String).label("experiment_id"),
        P.c.variant,
        P.c.metric_name.label("metric"),
        sa.func.max(P.c.metric_type).label("point_metric_type"),
    ]


def _rows_frame(rows: Sequence[sa.Row], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def _fetch(engine: Engine, query: sa.Select, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    with engine.connect() as conn:
        return _rows_frame(conn.execute(query).all(), schema)


PLAIN_SCHEMA = {**STATISTICS_SCHEMA, "negative_denominators": pl.Int64}
S = metric_sums
# A sum over no values is NULL, as in the scan: (sums, the count that says whether it has any).
SUMMED_OVER = {
    "sum": "n",
    "sum_sq": "n",
    "den_sum": "den_n",
    "den_sum_sq": "den_n",
    "num_den_sum": "num_den_n",
    "cov_sum": "cov_n",
    "cov_sum_sq": "cov_n",
    "num_cov_sum": "num_cov_n",
}


def _scanned_statistics(engine: Engine) -> pl.DataFrame:
    """Plain sums by a GROUP BY over every point."""
    value = sa.cast(P.c.metric_value, sa.Float)
    den, cov = P.c.denominator, P.c.covariate
    query = sa.select(
        *_keys(),
        sa.func.count(value).label("n"),
        sa.func.sum(value).label("sum"),
        sa.func.sum(value * value).label("sum_sq"),
        sa.func.sum(den).label("den_sum"),
        sa.func.sum(den * den).label("den_sum_sq"),
        sa.func.sum(value * den).label("num_den_sum"),
        sa.func.count(cov).label("cov_n"),
        sa.func.sum(cov).label("cov_sum"),
        sa.func.sum(cov * cov).label("cov_sum_sq"),
        sa.func.sum(value * cov).label("num_cov_sum"),
        (sa.func.count() - sa.func.count(value)).label("invalid_values"),
        sa.func.count().filter(den < 0).label("negative_denominators"),
    ).group_by(*GROUP)
    return _fetch(engine, query, PLAIN_SCHEMA)


def _unless_null_key(bit: int, column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.case((S.c.null_keys.op("&")(bit) == 0, column))


def _rollup_statistics(conn: sa.Connection) -> pl.DataFrame:
    """Plain sums read from `experiment_metric_sums` (one row per group and metric type)."""
    decoded = (
        sa.select(
            _unless_null_key(1, S.c.experiment_id).label("experiment_id"),
            _unless_null_key(2, S.c.variant).label("variant"),
            _unless_null_key(4, S.c.metric_name).label("metric"),
            _unless_null_key(8, S.c.metric_type).label("metric_type"),
            *(c for c in S.c if c.name not in (*ROLLUP_KEYS, "null_keys")),
        )
        .where(S.c.rows > 0)
        .subquery()
    )
    d = decoded.c
    query = sa.select(
        d.experiment_id,
        d.variant,
        d.metric,
        sa.func.max(d.metric_type).label("point_metric_type"),
        *(sa.func.sum(d[c]).label(c) for c in (*COUNTS, *SUMMED_OVER)),
    ).group_by(d.experiment_id, d.variant, d.metric)
    rows = conn.execute(query).all()
    schema = {
        **{k: pl.String for k in ("experiment_id", "variant", "metric", "point_metric_type")},
        **{c: pl.Int64 for c in COUNTS},
        **{c: pl.Float64 for c in SUMMED_OVER},
    }
    frame = _rows_frame(rows, schema)
    return frame.with_columns(
        *(pl.when(pl.col(n) > 0).then(pl.col(c)).alias(c) for c, n in SUMMED_OVER.items()),
        invalid_values=pl.col("rows") - pl.col("n"),
    ).select(*PLAIN_SCHEMA, "nonfinite_rows")


def _plain_statistics(engine: Engine) -> pl.DataFrame:
    """Sums over every row: the fast path, exact for groups whose values are all usable.

    Read from `experiment_metric_sums` when its triggers are installed (`juggernaut db
    upgrade`; one catalog query tells), else by a full scan of the points. The read also
    returns `nonfinite_rows`: groups with a NaN or infinite field keep finite sums there, so
    they are recognised by that count rather than by a non-finite sum.
    """
    with engine.connect() as conn:
        if rollups_installed(conn):
            return _rollup_statistics(conn)
    return _scanned_statistics(engine)


def _filtered_statistics(engine: Engine, experiment_ids: list[str]) -> pl.DataFrame:
    """Sums over usable rows only (finite values, denominators >= 0): the careful path."""
    value = sa.cast(P.c.metric_value, sa.Float)
    den = sa.cast(P.c.denominator, sa.Float)
    cov = sa.cast(P.c.covariate, sa.Float)
    ok = sa.and_(
        value.between(-FINITE, FINITE),
        sa.or_(P.c.denominator.is_(None), den.between(0, FINITE)),
    )
    cov_ok = sa.and_(ok, cov.between(-FINITE, FINITE))
    query = (
        sa.select(
            *_keys(),
            sa.func.sum(sa.case((ok, 1), else_=0)).label("n"),
            _sum(value, ok).label("sum"),
            _sum(value * value, ok).label("sum_sq"),
            _sum(den, ok).label("den_sum"),
            _sum(den * den, ok).label("den_sum_sq"),
            _sum(value * den, ok).label("num_den_sum"),
            sa.func.sum(sa.case((cov_ok, 1), else_=0)).label("cov_n"),
            _sum(cov, cov_ok).label("cov_sum"),
            _sum(cov * cov, cov_ok).label("cov_sum_sq"),
            _sum(value * cov, cov_ok).label("num_cov_sum"),
            sa.func.sum(sa.case((ok, 0), else_=1)).label("invalid_values"),
        )
        .where(sa.cast(P.c.experiment_id, sa.String).in_(experiment_ids))
        .group_by(*GROUP)
    )
    return _fetch(engine, query, STATISTICS_SCHEMA)


def load_sufficient_statistics(engine: Engine) -> pl.DataFrame:
    """Aggregate `experiment_metric_points` to sufficient statistics in the database.

    Two passes: plain sums over every row (read from the trigger-kept `experiment_metric_sums`,
    or a scan without per-row conditions where those triggers are missing), then, only for the
    experiments with a group that holds a NULL, NaN or infinite value or a negative
    denominator, sums over the usable rows. Those rows are counted in `invalid_values`, not
    used. Raw points never leave the database.
    """
    plain = _plain_statistics(engine)
    sums = [c for c, t in SUFFICIENT_COLUMNS.items() if t == pl.Float64]
    flags = [c for c in ("negative_denominators", "nonfinite_rows") if c in plain.columns]
    dirty = (
        (pl.col("invalid_values") > 0)
        | pl.any_horizontal([pl.col(c) > 0 for c in flags])
        | pl.any_horizontal([~pl.col(c).fill_null(0).is_finite() for c in sums])
    )
    dirty_ids = plain.filter(dirty)["experiment_id"].unique().to_list()
    clean = plain.filter(~pl.col("experiment_id").is_in(dirty_ids)).drop(flags)
    if not dirty_ids:
        return clean
    return pl.concat([clean, _filtered_statistics(engine, dirty_ids)])


def load_experiments(engine: Engine, statuses: tuple[str, ...] | None = None) -> pl.DataFrame:
    query = sa.select(
        sa.cast(E.c.id, sa.String).label("experiment_id"), E.c.name, E.c.status, E.c.config
    )
    if statuses:
        query = query.where(E.c.status.in_(statuses))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        config = row.pop("config") or {}
        row["primary_metric"] = config.get("primary_metric") if isinstance(config, dict) else None
        row["config_metric_type"] = config.get("metric_type") if isinstance(config, dict) else None
    schema = {
        "experiment_id": pl.String,
        "name": pl.String,
        "status": pl.String,
        "primary_metric": pl.String,
        "config_metric_type": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def load_arms(engine: Engine) -> pl.DataFrame:
    query = sa.select(
        sa.cast(V.c.experiment_id, sa.String).label("experiment_id"),
        V.c.name.label("variant"),
        sa.func.coalesce(V.c.is_control, False).label("is_control"),
        sa.cast(V.c.traffic_percentage, sa.Float).label("weight"),
    )
    schema = {
        "experiment_id": pl.String,
        "variant": pl.String,
        "is_control": pl.Boolean,
        "weight": pl.Float64,
    }
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def _metric_types(suff: pl.DataFrame, experiments: pl.DataFrame) -> pl.DataFrame:
    """The points' own metric_type, else the config's for the primary metric, else `mean`."""
    known = [t.value for t in MetricType]
    return suff.join(experiments, on="experiment_id", how="left").with_columns(
        metric_type=pl.when(pl.col("point_metric_type").is_in(known))
        .then(pl.col("point_metric_type"))
        .when(
            (pl.col("metric") == pl.col("primary_metric"))
            & pl.col("config_metric_type").is_in(known)
        )
        .then(pl.col("config_metric_type"))
        .otherwise(pl.lit(MetricType.MEAN.value))
    )


def goal_rows(suff: pl.DataFrame) -> pl.DataFrame:
    """Whole-experiment statistics for goal-based experiments (no control to compare with)."""
    n = pl.col("n").sum()
    total = pl.col("sum").sum()
    squares = pl.col("sum_sq").sum()
    return (
        suff.group_by("experiment_id", "metric", "metric_type")
        .agg(
            n=n,
            mean=total / n,
            variance=pl.when(n > 1).then((squares - total * total / n) / (n - 1)),
            invalid_values=pl.col("invalid_values").sum(),
        )
        .with_columns(
            variant=pl.lit(None, pl.String),
            is_control=pl.lit(False),
            status=pl.when(pl.col("n") > 0)
            .then(pl.lit(GOAL_BASED))
            .otherwise(pl.lit(RowStatus.NO_DATA.value)),
        )
    )


def build_experiment_metrics(engine: Engine) -> tuple[pl.DataFrame, dict[str, int]]:
    """The `experiment_metrics` frame and counts of what was left out (for metadata)."""
    experiments = load_experiments(engine)
    suff = _metric_types(load_sufficient_statistics(engine), experiments)
    arms = load_arms(engine)
    arm_counts = arms.group_by("experiment_id").len()
    ab_ids = arm_counts.filter(pl.col("len") >= 2)["experiment_id"].to_list()
    known = suff.join(
        arms.select("experiment_id", "variant"), on=["experiment_id", "variant"], how="semi"
    )
    ab = experiment_metrics_frame(
        known.filter(pl.col("experiment_id").is_in(ab_ids)),
        arms.filter(pl.col("experiment_id").is_in(ab_ids)),
    )
    goal_suff = suff.filter(~pl.col("experiment_id").is_in(ab_ids))
    goal = goal_rows(goal_suff)
    frame = pl.concat([ab, goal], how="diagonal_relaxed").sort("experiment_id", "metric", "variant")
    unknown = suff.filter(pl.col("experiment_id").is_in(ab_ids)).join(
        known, on=["experiment_id", "variant", "metric"], how="anti"
    )
    return frame, {
        "points_for_unknown_variants": int(unknown["n"].sum() + unknown["invalid_values"].sum()),
        "invalid_values": int(suff["invalid_values"].sum()),
    }


METRICS_COLUMNS = documented_columns(
    {
        "experiment_id": (pl.String(), "The experiment (experiments.id)."),
        "variant": (
            pl.String(),
            "The variant (null on a goal-based experiment's rows: all units together).",
        ),
        "metric": (pl.String(), "The metric."),
        "metric_type": (pl.String(), "binomial, mean or ratio."),
        "is_control": (pl.Boolean(), "Whether this variant is the experiment's control."),
        "n": (pl.Int64(), "Units with a finite value."),
        "mean": (
            pl.Float64(),
            "Mean per unit (for a ratio metric, mean numerator over mean denominator).",
        ),
        "variance": (
            pl.Float64(),
            "Variance per unit: p(1-p) for binomial, by the delta method for a ratio.",
        ),
        "lift_abs": (
            pl.Float64(),
            "Absolute lift over the control (null on the control and on rows not ok).",
        ),
        "lift_rel": (pl.Float64(), "Relative lift over the control."),
        "ci_low": (pl.Float64(), "Lower end of the 95 % Welch interval of the relative lift."),
        "ci_high": (pl.Float64(), "Upper end of that interval."),
        "p_value": (pl.Float64(), "Two-sided p-value against the control."),
        "chance_to_beat_control": (
            pl.Float64(),
            "Bayesian chance to beat the control (prior N(0, 0.3²) on the relative lift).",
        ),
        "risk": (
            pl.Float64(),
            "Bayesian risk: expected relative loss E[max(−lift, 0)] of choosing this variant.",
        ),
        "seq_ci_low": (
            pl.Float64(),
            "Lower end of the always-valid interval (N* = 5000): safe to watch daily.",
        ),
        "seq_ci_high": (pl.Float64(), "Upper end of the always-valid interval."),
        "seq_p_value": (pl.Float64(), "Always-valid p-value."),
        "cuped_lift_rel": (
            pl.Float64(),
            "Relative lift after CUPED (when every unit has a covariate).",
        ),
        "cuped_p_value": (pl.Float64(), "p-value after CUPED."),
        "cuped_theta": (pl.Float64(), "The CUPED coefficient."),
        "srm_p_value": (
            pl.Float64(),
            "Per experiment: χ² p-value of the traffic split against the configured one.",
        ),
        "srm_flag": (pl.Boolean(), "Sample-ratio mismatch: srm_p_value below 0.001."),
        "invalid_values": (pl.Int64(), "NaN/inf values or negative denominators left out."),
        "status": (
            pl.String(),
            "ok, insufficient_data, zero_variance, missing_control, no_data, "
            "invalid_denominator, or goal_based (0 or 1 variant: judged against its criteria, "
            "not a control).",
        ),
    }
)


@dg.asset(
    group_name="experiments",
    kinds={"polars"},
    owners=OWNERS,
    deps=[experiment_metric_points],
    metadata=METRICS_COLUMNS,
)
def experiment_metrics(
    context: dg.AssetExecutionContext, governance_db: GovernanceDB
) -> dg.MaterializeResult:
    """One row per experiment × variant × metric, computed from `experiment_metric_points`
    (aggregated to sufficient statistics in the database first).

    Against the control of the same experiment and metric: lifts, a Welch interval, Bayesian
    and always-valid (sequential) statistics and CUPED; per experiment a sample-ratio test.
    Each column is described in the Columns table.
    """
    frame, skipped = build_experiment_metrics(governance_db.engine)
    problems = frame.filter(pl.col("status") != RowStatus.OK.value)
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "experiments": frame["experiment_id"].n_unique(),
            "srm_flagged": frame.filter(pl.col("srm_flag").fill_null(False))[
                "experiment_id"
            ].n_unique(),
            "rows_not_ok": problems.height,
            **skipped,
            "not_ok_preview": dg.MetadataValue.md(markdown_table(problems.head(10))),
            **scan_provenance(context.run.tags),
        },
    )

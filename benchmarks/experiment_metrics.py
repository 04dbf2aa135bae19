"""10,000,000 metric points across 1,000 experiments → `experiment_metrics`.

Points are generated once into a Parquet file (2 variants per experiment, binomial, ratio and
mean metrics, some with covariates). The measured step runs in a fresh process so its peak RSS
is its own: lazy polars aggregation to sufficient statistics (streaming), then the statistics.
The naive way (every point as a Python object, accumulated row by row) is timed on 1,000,000
points and scaled to 10,000,000. Target: ≤ 5 s and ≤ 2 GB peak RSS.

The asset itself aggregates in the database (`load_sufficient_statistics`); that path is
measured on PostgreSQL with `--database-points N` (2,000,000 by default; 0 skips it), in a
throwaway database on the local server.

    .venv/bin/python -m benchmarks.experiment_metrics [--database-points 2000000]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl

POINTS = 10_000_000
EXPERIMENTS = 1_000
NAIVE_POINTS = 1_000_000


def generate(path: Path, n: int = POINTS) -> None:
    rng = np.random.default_rng(42)
    experiment = rng.integers(0, EXPERIMENTS, n)
    variant = rng.integers(0, 2, n)
    metric = rng.integers(0, 3, n)
    value = np.where(metric == 0, rng.random(n) < 0.1 + 0.01 * variant, rng.gamma(2.0, 20.0, n))
    pl.DataFrame(
        {
            "experiment_id": pl.Series(experiment).cast(pl.String),
            "variant": pl.Series(np.where(variant == 0, "control", "treat")),
            "metric": pl.Series(np.array(["conversion", "revenue", "revenue_per_visit"])[metric]),
            "value": value.astype(float),
            "denominator": np.where(metric == 2, rng.integers(1, 5, n), np.nan),
            "covariate": np.where(metric == 1, rng.gamma(2.0, 20.0, n), np.nan),
        }
    ).with_columns(
        pl.col("denominator").fill_nan(None), pl.col("covariate").fill_nan(None)
    ).write_parquet(path)


def measure(path: str) -> None:
    from juggernaut_assets.lib.experiments.stats import (
        experiment_metrics_frame,
        sufficient_statistics,
    )

    start = time.perf_counter()
    suff = sufficient_statistics(pl.scan_parquet(path)).collect(engine="streaming")
    suff = suff.with_columns(
        metric_type=pl.col("metric").replace_strict(
            {"conversion": "binomial", "revenue": "mean", "revenue_per_visit": "ratio"}
        )
    )
    arms = (
        suff.select("experiment_id", "variant")
        .unique()
        .with_columns(is_control=pl.col("variant") == "control", weight=pl.lit(50.0))
    )
    frame = experiment_metrics_frame(suff, arms)
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb, "rows": frame.height}))


def naive_seconds(path: Path) -> float:
    """Row by row in Python: each point a dict, accumulated into per-arm sums."""
    rows = pl.read_parquet(path, n_rows=NAIVE_POINTS).to_dicts()
    start = time.perf_counter()
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for row in rows:
        a = acc[(row["experiment_id"], row["variant"], row["metric"])]
        a[0] += 1
        a[1] += row["value"]
        a[2] += row["value"] ** 2
    means = {k: (s / n, (q - s * s / n) / (n - 1)) for k, (n, s, q) in acc.items() if n > 1}
    assert means
    return time.perf_counter() - start


INSERT_POINTS = """
INSERT INTO experiment_metric_points (id, experiment_id, metric_name, metric_value, variant,
    denominator, covariate)
SELECT gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad((g % 1000)::text, 12, '0'))::uuid,
  (ARRAY['conversion', 'revenue', 'revenue_per_visit'])[1 + (g / 1000) % 3],
  CASE WHEN (g / 1000) % 3 = 0 THEN (random() < 0.1)::int ELSE random() * 40 END,
  CASE WHEN g % 2 = 0 THEN 'control' ELSE 'treat' END,
  CASE WHEN (g / 1000) % 3 = 2 THEN 1 + (g % 4) END,
  CASE WHEN (g / 1000) % 3 = 1 THEN random() * 40 END
FROM generate_series(1, :n) AS g
"""


def database_seconds(n: int) -> float:
    """The asset's own path: GROUP BY to sufficient statistics inside PostgreSQL."""
    import sqlalchemy as sa

    from benchmarks._pg import temporary_database
    from juggernaut_assets.assets.experiments import load_sufficient_statistics
    from juggernaut_assets.db.engine import make_engine
    from juggernaut_assets.db.migrate import upgrade

    with temporary_database("ja_bench_experiments") as url:
        upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(INSERT_POINTS), {"n": n})
            conn.execute(sa.text("ANALYZE experiment_metric_points"))
        start = time.perf_counter()
        load_sufficient_statistics(engine)
        elapsed = time.perf_counter() - start
        engine.dispose()
    return elapsed


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        measure(sys.argv[2])
        return
    database_points = 2_000_000
    if "--database-points" in sys.argv:
        database_points = int(sys.argv[sys.argv.index("--database-points") + 1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "points.parquet"
        generate(path)
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.experiment_metrics", "--measure", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        naive = naive_seconds(path) * POINTS / NAIVE_POINTS
    print(
        f"{POINTS:,} points, {EXPERIMENTS:,} experiments -> {figures['rows']:,} metric rows in "
        f"{figures['seconds']:.2f} s, peak RSS {figures['peak_mb']:.0f} MB "
        "(target: <= 5 s, <= 2048 MB)"
    )
    print(
        f"naive row-by-row Python (sums only, scaled from {NAIVE_POINTS:,} points): {naive:.1f} s"
        f" -> {naive / figures['seconds']:.0f}x slower"
    )
    if database_points:
        seconds = database_seconds(database_points)
        print(
            f"PostgreSQL GROUP BY (the asset's path) over {database_points:,} numeric points: "
            f"{seconds:.2f} s ({seconds * POINTS / database_points:.1f} s per 10,000,000)"
        )


if __name__ == "__main__":
    main()

"""10,000,000 metric points across 1,000 experiments → `experiment_metrics`.

Points are generated once into a Parquet file (2 variants per experiment, binomial, ratio and
mean metrics, some with covariates). The measured step runs in a fresh process so its peak RSS
is its own: lazy polars aggregation to sufficient statistics (streaming), then the statistics.
The naive way (every point as a Python object, accumulated row by row) is timed on 1,000,000
points and scaled to 10,000,000. Target: ≤ 5 s and ≤ 2 GB peak RSS.

The asset itself reads sufficient statistics from the database (`load_sufficient_statistics`):
from `experiment_metric_sums`, kept by triggers, where they are installed, else by a GROUP BY
over every point. Both are measured on PostgreSQL with `--database-points N` (2,000,000 by
default; 0 skips it) in a throwaway database on the local server, with what the triggers
cost writers (points in one INSERT, in 1,000-row INSERTs, in one-row INSERTs).

    .venv/bin/python -m benchmarks.experiment_metrics [--database-points 2000000]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy.engine import Engine

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


POINT_COLUMNS = "id, experiment_id, metric_name, metric_value, variant, denominator, covariate"
POINT_VALUES = """gen_random_uuid(),
  ('00000000-0000-0000-0000-' || lpad((g % 1000)::text, 12, '0'))::uuid,
  (ARRAY['conversion', 'revenue', 'revenue_per_visit'])[1 + (g / 1000) % 3],
  CASE WHEN (g / 1000) % 3 = 0 THEN (random() < 0.1)::int ELSE random() * 40 END,
  CASE WHEN g % 2 = 0 THEN 'control' ELSE 'treat' END,
  CASE WHEN (g / 1000) % 3 = 2 THEN 1 + (g % 4) END,
  CASE WHEN (g / 1000) % 3 = 1 THEN random() * 40 END"""
INSERT_POINTS = (
    f"INSERT INTO experiment_metric_points ({POINT_COLUMNS}) SELECT {POINT_VALUES} "
    "FROM generate_series(:start, :stop) AS g"
)
WRITE_POINTS = 1_000_000
BATCH = 1_000
SINGLE_ROWS = 10_000


def _single_row_inserts(n: int) -> str:
    """`n` one-row INSERT statements run server-side (no client round trips in the timing)."""
    return (
        f"DO $$ BEGIN FOR g IN 1..{n} LOOP INSERT INTO experiment_metric_points "
        f"({POINT_COLUMNS}) SELECT {POINT_VALUES}; END LOOP; END $$"
    )


def _timed(action: Callable[[], object], repeat: int = 1) -> float:
    """Median seconds over `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _triggers(engine: Engine, enabled: bool) -> None:
    with engine.begin() as conn:
        state = "ENABLE" if enabled else "DISABLE"
        conn.exec_driver_sql(f"ALTER TABLE experiment_metric_points {state} TRIGGER USER")


def _insert_costs(engine: Engine) -> dict[str, tuple[float, float]]:
    """Seconds (without triggers, with triggers) for the same writes. Without runs first, so
    the triggered run writes into the slightly larger table."""
    import sqlalchemy as sa

    def insert(conn: sa.Connection, first: int, last: int) -> None:
        conn.execute(sa.text(INSERT_POINTS), {"start": first, "stop": last})

    def bulk() -> None:
        with engine.begin() as conn:
            insert(conn, 1, WRITE_POINTS)

    def batches(points: int, one_transaction: bool) -> None:
        with engine.connect() as conn:
            for first in range(1, points, BATCH):
                insert(conn, first, first + BATCH - 1)
                if not one_transaction:
                    conn.commit()
            conn.commit()

    def single_rows() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(_single_row_inserts(SINGLE_ROWS)))

    writes = {
        "bulk": bulk,
        "batches": lambda: batches(WRITE_POINTS, one_transaction=False),
        "batches_one_transaction": lambda: batches(WRITE_POINTS // 10, one_transaction=True),
        "single": single_rows,
    }
    costs = {}
    for name, action in writes.items():
        _triggers(engine, enabled=False)
        without = _timed(action)
        _triggers(engine, enabled=True)
        costs[name] = (without, _timed(action))
    return costs


def database_figures(n: int) -> dict[str, Any]:
    """The asset's path on PostgreSQL: the trigger-kept rollup against the full GROUP BY scan
    (both must give the same frame), and what the triggers cost writers."""
    import sqlalchemy as sa
    from polars.testing import assert_frame_equal

    from benchmarks._pg import temporary_database
    from juggernaut_assets.assets import experiments
    from juggernaut_assets.db.engine import make_engine
    from juggernaut_assets.db.migrate import upgrade
    from juggernaut_assets.db.rollups import rebuild_sums

    figures: dict[str, Any] = {}
    with temporary_database("ja_bench_experiments") as url:
        upgrade(url)
        engine = make_engine(url)
        _triggers(engine, enabled=False)
        with engine.begin() as conn:
            conn.execute(sa.text(INSERT_POINTS), {"start": 1, "stop": n})
        _triggers(engine, enabled=True)
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE experiment_metric_points"))
        with engine.begin() as conn:
            start = time.perf_counter()
            rebuild_sums(conn)
            figures["backfill"] = time.perf_counter() - start
        key = ["experiment_id", "variant", "metric"]
        via_rollup = experiments.load_sufficient_statistics(engine).sort(key)
        figures["rollup"] = _timed(lambda: experiments.load_sufficient_statistics(engine), 5)
        figures["asset"] = _timed(lambda: experiments.build_experiment_metrics(engine), 3)
        installed = experiments.rollups_installed
        experiments.rollups_installed = lambda conn: False
        try:
            start = time.perf_counter()
            via_scan = experiments.load_sufficient_statistics(engine).sort(key)
            figures["scan"] = time.perf_counter() - start
        finally:
            experiments.rollups_installed = installed
        assert_frame_equal(via_rollup, via_scan, check_exact=False, rel_tol=1e-9, abs_tol=1e-6)
        figures["insert"] = _insert_costs(engine)
        engine.dispose()
    return figures


def print_database_figures(n: int) -> None:
    before = os.getloadavg()
    f = database_figures(n)
    print(
        f"PostgreSQL, {n:,} numeric points (load average before: "
        f"{before[0]:.2f} / {before[1]:.2f} / {before[2]:.2f}, 1/5/15 min):"
    )
    print(
        f"  experiment_metrics load via experiment_metric_sums: {f['rollup'] * 1000:.1f} ms "
        f"(whole build_experiment_metrics: {f['asset'] * 1000:.0f} ms; target <= 5 s)"
    )
    print(
        f"  the old full GROUP BY scan: {f['scan']:.2f} s ({f['scan'] / f['rollup']:.0f}x "
        "slower; same frame to float tolerance)"
    )
    print(f"  one-time backfill (rebuild_sums, writers wait): {f['backfill']:.1f} s")
    labels = {
        "bulk": f"{WRITE_POINTS:,} points in one INSERT",
        "batches": f"{WRITE_POINTS:,} points in {BATCH:,}-row INSERTs, each committed",
        "batches_one_transaction": (
            f"{WRITE_POINTS // 10:,} points in {BATCH:,}-row INSERTs, one transaction"
        ),
        "single": f"{SINGLE_ROWS:,} one-row INSERTs in one transaction",
    }
    for name, (without, with_) in f["insert"].items():
        print(
            f"  writers, {labels[name]}: {without:.2f} s without triggers, {with_:.2f} s with "
            f"-> {with_ / without:.2f}x"
        )
    after = os.getloadavg()
    print(f"  load average after: {after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f}")


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
        print_database_figures(database_points)


if __name__ == "__main__":
    main()

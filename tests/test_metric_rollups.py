"""`experiment_metric_sums`: the triggers keep it equal to a full recomputation, on both engines."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from juggernaut_assets.assets import experiments as asset_module
from juggernaut_assets.cli import main
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.models import (
    Experiment,
    ExperimentMetricPoint,
    ExperimentVariant,
    new_id,
)
from juggernaut_assets.db.rollups import (
    COUNTS,
    KEYS,
    PG_TRIGGERS,
    SUMS_COLUMNS,
    TRIGGER_EVENTS,
    install_rollups,
    metric_sums,
    rebuild_sums,
    rollups_installed,
)

P = ExperimentMetricPoint.__table__
S = metric_sums
INF = float("inf")


def point(
    experiment_id: str,
    value: float | None,
    variant: str | None = "control",
    metric: str = "m",
    metric_type: str | None = None,
    den: float | None = None,
    cov: float | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "experiment_id": experiment_id,
        "metric_name": metric,
        "metric_value": value,
        "metric_type": metric_type,
        "variant": variant,
        "denominator": den,
        "covariate": cov,
    }


def random_points(n: int, experiments: list[str], seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        metric = ["conversion", "revenue", "rpv"][i % 3]
        rows.append(
            point(
                experiments[int(rng.integers(len(experiments)))],
                float(rng.gamma(2.0, 20.0)) if i % 17 else None,
                [None, "control", "treat", ""][int(rng.integers(4))],
                metric,
                [None, "mean", "ratio"][i % 3],
                float(rng.integers(-1, 5)) if metric == "rpv" else None,
                float(rng.normal(10, 3)) if metric == "revenue" and i % 5 else None,
            )
        )
    return rows


def insert(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(P), rows)


def _finite(x: float | None) -> bool:
    return x is None or math.isfinite(x)


def recomputed(engine: sa.Engine) -> dict[tuple, dict[str, float]]:
    """Every group's counts and sums, recomputed in Python from the points."""
    query = sa.select(
        sa.cast(P.c.experiment_id, sa.String),
        P.c.variant,
        P.c.metric_name,
        P.c.metric_type,
        P.c.metric_value,
        P.c.denominator,
        P.c.covariate,
    )
    with engine.connect() as conn:
        points = conn.execute(query).all()
    groups: dict[tuple, dict[str, float]] = defaultdict(
        lambda: dict.fromkeys((*COUNTS, *SUMS_COLUMNS), 0)
    )
    for e, variant, metric, metric_type, value, d, c in points:
        v = None if value is None else float(value)
        g = groups[(e, variant, metric, metric_type)]
        good = _finite(v) and _finite(d) and _finite(c)
        g["rows"] += 1
        g["n"] += v is not None
        g["den_n"] += d is not None
        g["num_den_n"] += v is not None and d is not None
        g["cov_n"] += c is not None
        g["num_cov_n"] += v is not None and c is not None
        g["negative_denominators"] += d is not None and d < 0
        g["nonfinite_rows"] += not good
        if good:
            v0, d0, c0 = v or 0.0, d or 0.0, c or 0.0
            g["sum"] += v0
            g["sum_sq"] += v0 * v0
            g["den_sum"] += d0
            g["den_sum_sq"] += d0 * d0
            g["num_den_sum"] += v0 * d0
            g["cov_sum"] += c0
            g["cov_sum_sq"] += c0 * c0
            g["num_cov_sum"] += v0 * c0
    return dict(groups)


def stored(engine: sa.Engine) -> dict[tuple, dict[str, float]]:
    """The rollup's groups that hold rows, with NULL keys decoded."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(S).where(S.c.rows > 0)).all()
    out = {}
    for row in rows:
        m = row._mapping
        key = tuple(None if m["null_keys"] & (1 << i) else m[k] for i, k in enumerate(KEYS))
        out[key] = {c: m[c] for c in (*COUNTS, *SUMS_COLUMNS)}
    return out


def assert_exact(engine: sa.Engine) -> None:
    expected, actual = recomputed(engine), stored(engine)
    assert set(actual) == set(expected)
    for key, sums in expected.items():
        for column in COUNTS:
            assert actual[key][column] == sums[column], (key, column)
        for column in SUMS_COLUMNS:
            assert actual[key][column] == pytest.approx(sums[column], rel=1e-9, abs=1e-6), (
                key,
                column,
            )


def scanned_statistics(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> pl.DataFrame:
    with monkeypatch.context() as m:
        m.setattr(asset_module, "rollups_installed", lambda conn: False)
        return asset_module.load_sufficient_statistics(engine)


def assert_same_statistics(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    key = ["experiment_id", "variant", "metric"]
    via_rollup = asset_module.load_sufficient_statistics(engine).sort(key, nulls_last=True)
    via_scan = scanned_statistics(engine, monkeypatch).sort(key, nulls_last=True)
    assert_frame_equal(via_rollup, via_scan, check_exact=False, rel_tol=1e-9, abs_tol=1e-6)


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    return make_engine(db_url)


def test_upgrade_installs_the_triggers(engine):
    with engine.connect() as conn:
        assert rollups_installed(conn)


def test_bulk_then_single_inserts_keep_exact_sums(engine, monkeypatch):
    experiments = [new_id() for _ in range(4)]
    insert(engine, random_points(600, experiments))
    assert_exact(engine)
    for row in random_points(15, experiments, seed=2):
        insert(engine, [row])
    assert_exact(engine)
    assert_same_statistics(engine, monkeypatch)


def test_updates_of_values_variants_metrics_and_types_move_the_sums(engine, monkeypatch):
    a, b = new_id(), new_id()
    insert(engine, random_points(300, [a, b]))
    with engine.begin() as conn:
        conn.execute(sa.update(P).where(P.c.metric_name == "revenue").values(metric_value=3.5))
        conn.execute(sa.update(P).where(P.c.variant == "treat").values(variant=None))
        conn.execute(sa.update(P).where(P.c.variant == "").values(variant="treat"))
        conn.execute(sa.update(P).where(P.c.metric_name == "rpv").values(metric_name="visits"))
        conn.execute(sa.update(P).where(P.c.metric_type == "mean").values(metric_type="binomial"))
        conn.execute(sa.update(P).where(P.c.experiment_id == b).values(experiment_id=a))
        conn.execute(sa.update(P).values(unit_id="u"))
    assert_exact(engine)
    assert_same_statistics(engine, monkeypatch)


def test_deletes_subtract_and_an_emptied_group_disappears(engine, monkeypatch):
    a, b = new_id(), new_id()
    insert(engine, random_points(300, [a, b]))
    with engine.begin() as conn:
        conn.execute(sa.delete(P).where(P.c.experiment_id == b))
        conn.execute(sa.delete(P).where(P.c.metric_name == "rpv"))
    assert_exact(engine)
    assert not any(key[0] == b for key in stored(engine))
    assert_same_statistics(engine, monkeypatch)


def test_nan_and_infinite_fields_are_counted_apart_and_reversible(engine, monkeypatch):
    clean, dirty = new_id(), new_id()
    rows = [
        point(clean, 1.0),
        point(clean, 2.0, "treat"),
        point(dirty, 2.0, den=1.0),
        point(dirty, float("nan"), den=1.0),
        point(dirty, INF),
        point(dirty, 5.0, den=-2.0),
        point(dirty, 7.0, "treat", cov=-INF),
        point(dirty, None, "treat"),
    ]
    insert(engine, rows)
    assert_exact(engine)
    assert_same_statistics(engine, monkeypatch)
    control = stored(engine)[(dirty, "control", "m", None)]
    assert control["nonfinite_rows"] == (2 if engine.dialect.name == "postgresql" else 1)
    assert math.isfinite(control["sum"])

    bad = [r["id"] for r in rows[3:5]] + [rows[6]["id"]]
    with engine.begin() as conn:
        conn.execute(sa.update(P).where(P.c.id == bad[0]).values(metric_value=4.0))
        conn.execute(sa.update(P).where(P.c.id == bad[2]).values(covariate=1.0))
        conn.execute(sa.delete(P).where(P.c.id == bad[1]))
    assert_exact(engine)
    assert stored(engine)[(dirty, "control", "m", None)]["nonfinite_rows"] == 0
    assert_same_statistics(engine, monkeypatch)


def test_null_and_empty_variants_and_types_stay_apart(engine, monkeypatch):
    e = new_id()
    insert(
        engine,
        [
            point(e, 1.0, None),
            point(e, 2.0, ""),
            point(e, 3.0, None, metric_type=""),
            point(e, 4.0, "", metric_type="mean"),
        ],
    )
    groups = stored(engine)
    assert {(k[1], k[3]) for k in groups} == {(None, None), ("", None), (None, ""), ("", "mean")}
    assert_exact(engine)
    assert_same_statistics(engine, monkeypatch)


def test_second_upgrade_installs_nothing_and_counts_nothing_twice(db_url, engine):
    insert(engine, random_points(200, [new_id()]))
    upgrade(db_url)
    with engine.begin() as conn:
        assert install_rollups(conn) == []
    assert_exact(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            names = conn.execute(
                sa.text("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'juggernaut_%'")
            ).scalars()
            functions = conn.execute(
                sa.text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'juggernaut_%'")
            ).scalar()
            assert (sorted(names), functions) == (sorted(PG_TRIGGERS), 1)
        else:
            names = conn.execute(
                sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).scalars()
            assert sorted(names) == sorted(TRIGGER_EVENTS)


def _drop_triggers(engine: sa.Engine) -> None:
    """Back to a database from before the rollup (test only: upgrade never drops)."""
    on = " ON experiment_metric_points" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as conn:
        for name in PG_TRIGGERS if engine.dialect.name == "postgresql" else TRIGGER_EVENTS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}{on}")
        conn.exec_driver_sql("DELETE FROM experiment_metric_sums")


def test_first_install_backfills_points_written_before_it(db_url, engine, monkeypatch):
    experiments = [new_id() for _ in range(3)]
    insert(engine, random_points(100, experiments))
    _drop_triggers(engine)
    insert(engine, random_points(200, experiments, seed=3))
    with engine.connect() as conn:
        assert not rollups_installed(conn)
    upgrade(db_url)
    with engine.connect() as conn:
        assert rollups_installed(conn)
    assert_exact(engine)
    insert(engine, random_points(50, experiments, seed=4))
    assert_exact(engine)
    assert_same_statistics(engine, monkeypatch)


def test_rebuild_recomputes_drifted_sums(db_url, engine, monkeypatch):
    insert(engine, random_points(200, [new_id(), new_id()]))
    with engine.begin() as conn:
        conn.execute(sa.update(S).values(sum=S.c.sum + 0.25, rows=S.c.rows + 1))
    with engine.begin() as conn:
        groups = rebuild_sums(conn)
    assert groups == len(recomputed(engine))
    assert_exact(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(S).values(sum_sq=S.c.sum_sq * 2))
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    result = CliRunner().invoke(main, ["db", "rebuild-rollups"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{groups} groups" in result.output
    assert_exact(engine)


def _seed_experiments(engine: sa.Engine) -> None:
    rng = np.random.default_rng(9)
    rows: list[dict[str, Any]] = []
    with sa.orm.Session(engine, expire_on_commit=False) as s, s.begin():
        for i, metric_type in enumerate(("binomial", "mean", "ratio")):
            exp = Experiment(
                name=f"ab {metric_type}",
                status="running",
                config={"primary_metric": "main", "metric_type": metric_type},
            )
            s.add(exp)
            s.flush()
            for name, control in (("control", True), ("treat", False)):
                s.add(
                    ExperimentVariant(
                        experiment_id=exp.id, name=name, is_control=control, traffic_percentage=50
                    )
                )
                for _ in range(400):
                    value = float(rng.random() < 0.1) if i == 0 else float(rng.gamma(2.0, 5.0))
                    den = float(rng.integers(1, 4)) if metric_type == "ratio" else None
                    cov = value + float(rng.normal()) if metric_type == "mean" else None
                    rows.append(point(exp.id, value, name, "main", None, den, cov))
                rows.append(point(exp.id, float(rng.random()), name, "guardrail", "mean"))
            rows.append(point(exp.id, 1.0, "mystery", "main"))
        goal = Experiment(name="goal", status="running", config={"primary_metric": "signups"})
        dirty = Experiment(name="dirty", status="running", config={"primary_metric": "main"})
        s.add_all([goal, dirty])
        s.flush()
        for name, control in (("control", True), ("treat", False)):
            s.add(ExperimentVariant(experiment_id=dirty.id, name=name, is_control=control))
    rows += [point(goal.id, float(x), None, "signups") for x in range(30)]
    rows += [point(dirty.id, float(x), ("control", "treat")[x % 2], "main") for x in range(40)]
    rows += [point(dirty.id, INF, "treat", "main"), point(dirty.id, 2.0, "treat", "main", den=-1)]
    insert(engine, rows)


def test_experiment_metrics_frame_is_the_same_with_and_without_rollups(engine, monkeypatch):
    _seed_experiments(engine)
    via_rollup, skipped = asset_module.build_experiment_metrics(engine)
    with monkeypatch.context() as m:
        m.setattr(asset_module, "rollups_installed", lambda conn: False)
        via_scan, skipped_scan = asset_module.build_experiment_metrics(engine)
    assert skipped == skipped_scan
    assert via_rollup.height == via_scan.height > 10
    assert_frame_equal(via_rollup, via_scan, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(pg_database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE experiment_metric_points, experiment_metric_sums")
    yield engine


def _writer(engine: sa.Engine, batches: Iterable[list[dict[str, Any]]], errors: list) -> None:
    try:
        for rows in batches:
            with engine.begin() as conn:
                conn.execute(sa.insert(P), rows)
    except Exception as exc:  # reported by the test
        errors.append(exc)


def test_concurrent_writers_to_one_experiment_end_with_exact_sums(pg_engine):
    """Two transactions insert into the same groups at once: the second waits on the group
    rows' locks, then adds to the first one's committed sums."""
    e = new_id()
    first_inserted, release = threading.Event(), threading.Event()
    errors: list[Exception] = []

    def held_open() -> None:
        with pg_engine.begin() as conn:
            conn.execute(sa.insert(P), random_points(300, [e], seed=10))
            first_inserted.set()
            release.wait(10)

    holder = threading.Thread(target=held_open)
    holder.start()
    assert first_inserted.wait(10)
    second = threading.Thread(
        target=_writer, args=(pg_engine, [random_points(300, [e], seed=11)], errors)
    )
    second.start()
    second.join(0.5)
    assert second.is_alive(), "the second writer should wait for the first one's commit"
    release.set()
    holder.join(10)
    second.join(10)
    assert not errors
    assert_exact(pg_engine)

    threads = [
        threading.Thread(
            target=_writer,
            args=(pg_engine, [random_points(40, [e], seed=s * 100 + i) for i in range(25)], errors),
        )
        for s in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert_exact(pg_engine)
    assert stored(pg_engine) and sum(g["rows"] for g in stored(pg_engine).values()) == 2600


def test_truncate_empties_the_sums(pg_engine):
    insert(pg_engine, random_points(20, [new_id()]))
    with pg_engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE experiment_metric_points")
    assert stored(pg_engine) == {}
    with pg_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(S)).scalar() == 0

"""The quick-start demo as `scripts/dev` runs it, in-process: the seeded tasks, the scan tasks'
asset runs and the sensors that follow them leave every asset materialised, and every lookup
the demo makes is answered by a replay recording."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from juggernaut_assets.assets.experiment_progress import (
    experiment_decisions_sensor,
    experiments_job,
)
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import Experiment
from juggernaut_assets.definitions import defs as platform_defs
from juggernaut_assets.demo import DEMO_EXPERIMENT, seed
from juggernaut_assets.domains.candidates import term_label
from juggernaut_assets.resources.polars_io import COLUMN_SCHEMA
from juggernaut_assets.sensors.scan_runs import SCAN_RUN_SENSORS
from juggernaut_assets.sensors.scan_tasks import scan_tasks_sensor
from juggernaut_assets.sensors.trend_followers import trend_followers_job, trend_followers_sensor
from tests.queue_driver import drain, task_row
from tests.scan_driver import scan

DEMO_DROP_LIST = (
    Path(__file__).resolve().parents[1] / "juggernaut_assets/fixtures/drop_lists/demo.txt"
)
FOLLOWERS = [trend_followers_sensor, experiment_decisions_sensor]


def demo_defs(resources: dict[str, Any]) -> dg.Definitions:
    """The platform's assets with the sensors the demo relies on, bound to test resources."""
    return dg.Definitions(
        assets=platform_defs.assets,
        asset_checks=platform_defs.asset_checks,
        jobs=[trend_followers_job, experiments_job],
        sensors=[scan_tasks_sensor, *SCAN_RUN_SENSORS, *FOLLOWERS],
        resources=resources,
    )


def follow(
    instance: dg.DagsterInstance, defs: dg.Definitions, sensor: dg.SensorDefinition, cursor=None
) -> tuple[list[dg.DagsterRun], str | None, str | None]:
    """One tick of an asset sensor as the daemon evaluates it; runs what it requests.

    Returns the runs, the new cursor and the skip message."""
    repository = defs.get_repository_def()
    context = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repository)
    data = sensor.evaluate_tick(context)
    runs = []
    for request in data.run_requests or []:
        result = repository.get_job(request.job_name or sensor.job_name).execute_in_process(
            instance=instance, asset_selection=request.asset_selection, tags=request.tags
        )
        runs.append(result.dagster_run)
    return runs, data.cursor, data.skip_message


def materialised(instance: dg.DagsterInstance, defs: dg.Definitions) -> set[str]:
    graph = defs.get_repository_def().asset_graph
    return {
        key.to_user_string()
        for key in graph.materializable_asset_keys
        if instance.get_latest_materialization_event(key) is not None
    }


@pytest.fixture
def demo(db_url, instance, resources, monkeypatch) -> dg.Definitions:
    """The demo seeded and run: executor batches, scan tasks, then the follower sensors."""
    monkeypatch.setenv("JUGGERNAUT_DROP_LISTS", str(DEMO_DROP_LIST))
    seed(make_engine(db_url))
    assert drain(instance, resources) > 0
    defs = demo_defs(resources)
    assert {run.status for run in scan(instance, defs, resources)} == {dg.DagsterRunStatus.SUCCESS}
    for sensor in FOLLOWERS:
        runs, _, skipped = follow(instance, defs, sensor)
        assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS], skipped
    return defs


def columns(schema: dg.TableSchema) -> list[tuple[str, str, str | None]]:
    return [(c.name, c.type, c.description) for c in schema.columns]


def test_demo_materialises_every_asset_with_its_documented_columns(demo, instance):
    """Every asset has a materialisation, and the UI's Columns table describes what it wrote:
    each asset's definition documents every column, and each materialisation's schema (the
    frame's real types) carries the same descriptions. One test, since the demo costs ~10 s."""
    graph = demo.get_repository_def().asset_graph
    every = {key.to_user_string() for key in graph.materializable_asset_keys}
    assert {"experiment_metrics", "experiment_decisions", "expired_domains"} <= every
    assert materialised(instance, demo) == every
    for key in graph.materializable_asset_keys:
        documented = graph.get(key).metadata.get(COLUMN_SCHEMA)
        assert isinstance(documented, dg.TableSchema), f"{key.to_user_string()}: no columns"
        assert all(c.description for c in documented.columns), key.to_user_string()
        event = instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None
        written = event.asset_materialization.metadata[COLUMN_SCHEMA].value
        assert columns(written) == columns(documented), key.to_user_string()


def test_demo_domain_lookups_are_all_answered_by_recordings(demo, instance, resources):
    data = Path(os.environ["JUGGERNAUT_DATA_DIR"])
    scores = pl.read_parquet(data / "trend_scores.parquet")
    terms = scores.filter(pl.col("term_score").is_not_null())["term"].unique().to_list()
    scored = len(terms)
    # Every scored term, not only the default top 8: the ranking may shift as days accumulate.
    config = {"top_terms": scored, "cache_ttl_hours": 0}
    assert dg.materialize(
        platform_defs.assets,
        selection=["expired_domains"],
        resources=resources,
        instance=instance,
        run_config={"ops": {"expired_domains": {"config": config}}},
    ).success
    domains = pl.read_parquet(data / "expired_domains.parquet")
    errors = dict(domains.filter(pl.col("error").is_not_null()).select("domain", "error").rows())
    assert errors == {
        "not a domain!!": "invalid character ' ' in label 'not a domain!!'",
        "-bad-.com": "label '-bad-' starts or ends with a hyphen",
        "xn--bcher-kva.de": "rdap: no RDAP server for .de",
    }
    names = {f"{term_label(t)}.{tld}" for t in terms for tld in ("com", "net", "io", "ai")}
    assert len(names) == 4 * scored >= 40
    assert names <= set(domains["domain"])
    assert domains["wayback_snapshots"].null_count() == 2  # only the two invalid names


def test_demo_experiment_is_decided_once_per_metrics_materialisation(demo, db_url, instance):
    with make_engine(db_url).connect() as conn:
        summary = conn.execute(
            sa.select(Experiment.results_summary).where(Experiment.name == DEMO_EXPERIMENT)
        ).scalar_one()
    [metrics] = instance.fetch_materializations(dg.AssetKey("experiment_metrics"), limit=1).records
    assert summary["evaluation_key"] == f"experiment_metrics:{metrics.storage_id}"
    assert summary["decision"] in {"continue", "conclude"}

    repository = demo.get_repository_def()
    assert repository.get_job(experiments_job.name).execute_in_process(instance=instance).success
    runs, _, skipped = follow(instance, demo, experiment_decisions_sensor)
    assert runs == []
    assert skipped is not None and "decided the experiments with these metrics" in skipped


def test_demo_scan_task_for_experiment_metrics_completes(demo, db_url):
    with make_engine(db_url).connect() as conn:
        task_id = conn.execute(
            sa.text(
                "SELECT id FROM governance_tasks WHERE dedupe_key = 'demo:scan-experiment-metrics'"
            )
        ).scalar_one()
    row = task_row(db_url, str(task_id))
    assert row.status == "completed", row.error_message


def test_the_sensors_the_demo_relies_on_are_in_the_code_location_and_start_running():
    repository = platform_defs.get_repository_def()
    for sensor in [scan_tasks_sensor, *SCAN_RUN_SENSORS, *FOLLOWERS]:
        bound = repository.get_sensor_def(sensor.name)
        assert bound.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name

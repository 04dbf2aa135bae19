"""`governance_tables_sensor`: the external governance tables show observations with row counts."""

from __future__ import annotations

import json

import dagster as dg

from juggernaut_assets.sensors.table_observations import governance_tables_sensor
from juggernaut_assets.tasks.create import add_task


def _tick(instance, governance_db, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"governance_db": governance_db}
    )
    result = governance_tables_sensor(context)
    if isinstance(result, dg.SensorResult):
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
    return result


def test_tables_are_observed_with_their_counts_and_only_when_they_change(instance, governance_db):
    with governance_db.session() as session:
        for n in range(3):
            add_task(session, "analysis", {"sql": f"SELECT {n}"})
    first = _tick(instance, governance_db)
    assert isinstance(first, dg.SensorResult)
    assert json.loads(first.cursor)["governance_tasks"] == {"pending": 3}
    [record] = instance.fetch_observations(dg.AssetKey("governance_tasks"), limit=1).records
    metadata = record.asset_observation.metadata
    assert metadata["dagster/row_count"].value == 3 and metadata["status/pending"].value == 3
    [points] = instance.fetch_observations(dg.AssetKey("experiment_metric_points"), limit=1).records
    assert points.asset_observation.metadata["dagster/row_count"].value == 0

    unchanged = _tick(instance, governance_db, first.cursor)
    assert isinstance(unchanged, dg.SkipReason)
    assert "governance_tasks 3" in unchanged.skip_message

    with governance_db.session() as session:
        add_task(session, "analysis", {"sql": "SELECT 9"})
    again = _tick(instance, governance_db, first.cursor)
    assert [e.asset_key.to_user_string() for e in again.asset_events] == ["governance_tasks"]
    assert again.asset_events[0].metadata["dagster/row_count"].value == 4

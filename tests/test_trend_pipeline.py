"""The trend chain as an operator runs it: a `scan` task materialises `market_trends`, and the
follower sensor asks for `trend_scores` → `expired_domains` once per new partition."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from juggernaut_assets.assets.market_trends import daily
from juggernaut_assets.db.models import TaskArtifact
from juggernaut_assets.sensors.trend_followers import trend_followers_sensor
from juggernaut_assets.tasks.create import add_task
from tests.queue_driver import task_row
from tests.scan_driver import scan, scan_defs


def test_scan_task_materialises_the_latest_trend_day_and_followers_run_once(
    governance_db, db_url, instance, resources
):
    with governance_db.session() as session:
        task, _ = add_task(session, "scan", {"asset": "market_trends"})
    scan(instance, scan_defs(resources), resources)
    row = task_row(db_url, task.id)
    assert row.status == "completed", row.error_message
    event = instance.get_latest_materialization_event(dg.AssetKey("market_trends"))
    assert event.dagster_event.partition == daily.get_last_partition_key()
    with governance_db.session() as session:
        [artifact] = session.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task.id))
    assert artifact.verified and artifact.external_id == event.run_id

    context = dg.build_sensor_context(instance=instance)
    [request] = list(trend_followers_sensor(context))
    assert request.run_key == f"market_trends:{event.run_id}:{daily.get_last_partition_key()}"
    again = dg.build_sensor_context(instance=instance, cursor=context.cursor)
    [skipped] = list(trend_followers_sensor(again))
    assert isinstance(skipped, dg.SkipReason)

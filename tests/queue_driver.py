"""Drive the real sensor and the real executor job in-process, as the daemon would."""

from __future__ import annotations

from typing import Any

import dagster as dg
import sqlalchemy as sa

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import GovernanceTask
from juggernaut_assets.jobs.execute_tasks import execute_tasks
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.sensors.new_tasks import new_tasks_sensor


def evaluate_sensor(
    instance: dg.DagsterInstance, resources: dict[str, Any], cursor: str | None = None
) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
    result = new_tasks_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    for event in result.asset_events or []:
        instance.report_runless_asset_event(event)
    return result


def launch(
    instance: dg.DagsterInstance, resources: dict[str, Any], request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    return execute_tasks.execute_in_process(
        run_config=request.run_config,
        resources=resources,
        instance=instance,
        tags=request.tags,
    )


def launch_without_database(
    instance: dg.DagsterInstance, resources: dict[str, Any], request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Run the request with a governance database that cannot be opened: the run fails
    before it takes its batch."""
    broken = {**resources, "governance_db": GovernanceDB(url="sqlite:////nonexistent/dir/x.db")}
    return execute_tasks.execute_in_process(
        run_config=request.run_config,
        resources=broken,
        instance=instance,
        tags=request.tags,
        raise_on_error=False,
    )


def drain(instance: dg.DagsterInstance, resources: dict[str, Any], ticks: int = 5) -> int:
    """Evaluate the sensor and run every request until nothing is launched; returns runs."""
    runs = 0
    for _ in range(ticks):
        result = evaluate_sensor(instance, resources)
        if not result.run_requests:
            return runs
        for request in result.run_requests:
            launch(instance, resources, request)
            runs += 1
    return runs


def task_row(db_url: str, task_id: str) -> sa.Row:
    """The task's row; JSON columns as their raw text (a row may hold JSON that does not parse)."""
    table = GovernanceTask.__table__
    columns = [
        sa.cast(c, sa.Text).label(c.name) if isinstance(c.type, sa.JSON) else c
        for c in table.columns
    ]
    with make_engine(db_url).connect() as conn:
        return conn.execute(sa.select(*columns).where(table.c.id == task_id)).one()

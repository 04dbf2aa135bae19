"""Drive `scan_tasks_sensor`, the asset runs it requests, and the run-status sensors in-process.

The sensors are evaluated as the daemon evaluates them (`evaluate_tick`, which resolves each run
request onto the code location's asset job), and each requested run is executed on the same
instance with the request's asset selection, partition and tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from juggernaut_assets.definitions import defs as platform_defs
from juggernaut_assets.sensors.scan_runs import SCAN_RUN_SENSORS
from juggernaut_assets.sensors.scan_tasks import scan_tasks_sensor

RUN_SENSOR = {sensor.name: sensor for sensor in SCAN_RUN_SENSORS}
END_EVENT = {
    dg.DagsterRunStatus.SUCCESS: dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterRunStatus.FAILURE: dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterRunStatus.CANCELED: dg.DagsterEventType.RUN_CANCELED,
}


def scan_defs(
    resources: dict[str, Any],
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec] = (),
    asset_checks: Sequence[dg.AssetChecksDefinition] = (),
) -> dg.Definitions:
    """The platform's assets (plus test-only ones) and the scan sensors, bound to `resources`."""
    return dg.Definitions(
        assets=[*(platform_defs.assets or []), *assets],
        asset_checks=[*(platform_defs.asset_checks or []), *asset_checks],
        sensors=[scan_tasks_sensor, *SCAN_RUN_SENSORS],
        resources=resources,
    )


def tick(
    instance: dg.DagsterInstance, defs: dg.Definitions, resources: dict[str, Any]
) -> Any:  # SensorExecutionData
    """One evaluation of `scan_tasks_sensor`; applies its dynamic partition requests."""
    context = dg.build_sensor_context(
        instance=instance, resources=resources, repository_def=defs.get_repository_def()
    )
    data = scan_tasks_sensor.evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return data


def launch(
    instance: dg.DagsterInstance, defs: dg.Definitions, request: dg.RunRequest
) -> dg.DagsterRun:
    """Execute a resolved run request of the sensor, as the run worker would."""
    job = defs.get_repository_def().get_job(request.job_name)
    result = job.execute_in_process(
        instance=instance,
        asset_selection=request.asset_selection,
        tags=request.tags,
        raise_on_error=False,
    )
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return run


def settle(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    resources: dict[str, Any],
    run: dg.DagsterRun,
) -> None:
    """Evaluate the run-status sensor for the run's final status, as the daemon would."""
    sensor = RUN_SENSOR[f"scan_run_{run.status.value.lower()}_sensor"]
    [*_, record] = instance.all_logs(run.run_id, of_type=END_EVENT[run.status])
    event = record.dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources=resources,
        repository_def=defs.get_repository_def(),
    )
    sensor(context)


def scan(
    instance: dg.DagsterInstance, defs: dg.Definitions, resources: dict[str, Any]
) -> list[dg.DagsterRun]:
    """Claim, run and settle every pending scan task; returns the runs."""
    runs = []
    for request in tick(instance, defs, resources).run_requests or []:
        run = launch(instance, defs, request)
        settle(instance, defs, resources, run)
        runs.append(run)
    return runs

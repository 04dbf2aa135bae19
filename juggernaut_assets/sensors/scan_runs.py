"""Settling `scan` tasks when their asset run ends: one run-status sensor per final status.

Each watches the runs of this code location and acts only on those `scan_tasks_sensor`
launched (tagged `juggernaut/task_type=scan`): the task is completed only when the run
succeeded, materialised its asset (and partition) and passed its ERROR-severity checks;
otherwise it goes back to the queue with the reason (and fails once its attempts are used).
A status event missed while the daemon was down is settled by `scan_tasks_sensor`'s backstop.
"""

from __future__ import annotations

import dagster as dg

from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.execution.scan import TASK_TYPE_TAG, settle_scan_run
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.sensors.new_tasks import SENSOR_INTERVAL_SECONDS
from juggernaut_assets.sensors.scan_tasks import report


def _settle_on(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=f"scan_run_{status.value.lower()}_sensor",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        monitor_all_code_locations=False,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Settles the scan task of a scan run that ended {status.value}.",
    )
    def settle(context: dg.RunStatusSensorContext, governance_db: GovernanceDB) -> None:
        run = context.dagster_run
        if run.tags.get(TASK_TYPE_TAG) != HandlerName.SCAN.value:
            return
        outcome = settle_scan_run(governance_db.engine, context.instance, run)
        if outcome is not None:
            report(context.instance, governance_db.engine, [outcome])
            context.log.info(f"scan task {outcome.task_id}: {outcome.message}")

    return settle


scan_run_success_sensor = _settle_on(dg.DagsterRunStatus.SUCCESS)
scan_run_failure_sensor = _settle_on(dg.DagsterRunStatus.FAILURE)
scan_run_canceled_sensor = _settle_on(dg.DagsterRunStatus.CANCELED)
SCAN_RUN_SENSORS = [scan_run_success_sensor, scan_run_failure_sensor, scan_run_canceled_sensor]

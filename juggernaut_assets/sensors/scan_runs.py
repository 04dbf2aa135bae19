"""Settling `scan` tasks when their asset run ends: run-status sensors for success and failure.

Each watches the runs of this code location and acts only on those `scan_tasks_sensor`
launched (tagged `juggernaut/task_type=scan`): the task is completed only when the run
succeeded, materialised its asset (and partition) and passed its ERROR-severity checks;
otherwise it goes back to the queue with the reason (and fails once its attempts are used).
Every other ending (a cancelled run, a status event missed while the daemon was down) is
settled by `scan_tasks_sensor`'s backstop on its next tick, with the same function. Each
sensor costs the daemon an evaluation per interval whatever runs there are (measured: three
of them at 10 s added 20% to a 1,000-task batch on two cores), hence two, at Dagster's default
interval.
"""

from __future__ import annotations

import dagster as dg

from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.execution.scan import TASK_TYPE_TAG, settle_scan_run
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.sensors.scan_tasks import report

RUN_STATUS_INTERVAL_SECONDS = 30


def _settle_on(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=f"scan_run_{status.value.lower()}_sensor",
        minimum_interval_seconds=RUN_STATUS_INTERVAL_SECONDS,
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
SCAN_RUN_SENSORS = [scan_run_success_sensor, scan_run_failure_sensor]

"""Re-auditing after batch runs: `task_audit_after_runs_sensor`.

When an `execute_tasks` run succeeds, the tasks it settled are audited again: the sensor
requests a run of `task_completion_audit_job`, at most one every `AUDIT_MIN_GAP_MINUTES` (an
audit reads every task) and none while one is still queued (that run will see the batch). A
batch that settled no task asks for nothing. What is skipped is caught by the 15-minute
`task_completion_audit_schedule`. Every skip says why in the tick history. A run-status sensor
costs the daemon an evaluation per interval whatever ran, hence 60 s, not 10.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from juggernaut_assets.assets.task_audit import AUDIT_JOB, task_completion_audit_job
from juggernaut_assets.jobs.execute_tasks import SUMMARY_STATES, SUMMARY_TAG_PREFIX, execute_tasks

AUDIT_MIN_GAP_MINUTES = 5
INTERVAL_SECONDS = 60
AFTER_RUN_TAG = "juggernaut/audit_after_run"
WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


def _settled(run: dg.DagsterRun) -> int | None:
    """How many tasks the batch settled, from its summary tags (None: the run has none)."""
    counts = {state: run.tags.get(f"{SUMMARY_TAG_PREFIX}{state}") for state in SUMMARY_STATES}
    if all(c is None for c in counts.values()):
        return None
    return sum(int(c or 0) for state, c in counts.items() if state != "not_recorded")


def decide(
    instance: dg.DagsterInstance, run: dg.DagsterRun, now: datetime
) -> dg.RunRequest | dg.SkipReason:
    """Whether the end of `run` asks for an audit now (pure over the instance's runs)."""
    settled = _settled(run)
    if settled == 0:
        return dg.SkipReason(f"run {run.run_id[:8]} settled no task: nothing new to audit")
    waiting = instance.get_runs(dg.RunsFilter(job_name=AUDIT_JOB, statuses=WAITING), limit=1)
    if waiting:
        return dg.SkipReason(
            f"audit run {waiting[0].run_id[:8]} has not started yet: it will see run "
            f"{run.run_id[:8]}'s tasks"
        )
    [last] = instance.get_run_records(dg.RunsFilter(job_name=AUDIT_JOB), limit=1) or [None]
    if last is not None and last.create_timestamp > now - timedelta(minutes=AUDIT_MIN_GAP_MINUTES):
        at = last.create_timestamp.astimezone(UTC).strftime("%H:%M:%S")
        return dg.SkipReason(
            f"last audit run {last.dagster_run.run_id[:8]} started at {at} UTC, less than "
            f"{AUDIT_MIN_GAP_MINUTES} min ago; the 15-minute schedule audits run "
            f"{run.run_id[:8]}'s tasks if no later batch does"
        )
    return dg.RunRequest(tags={AFTER_RUN_TAG: run.run_id})


@dg.run_status_sensor(
    name="task_audit_after_runs_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[execute_tasks],
    request_job=task_completion_audit_job,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After a successful execute_tasks run, materialises task_completion_audit (at most "
        f"every {AUDIT_MIN_GAP_MINUTES} minutes, never while an audit run is queued)."
    ),
)
def task_audit_after_runs_sensor(
    context: dg.RunStatusSensorContext,
) -> dg.RunRequest | dg.SkipReason:
    return decide(context.instance, context.dagster_run, datetime.now(UTC))

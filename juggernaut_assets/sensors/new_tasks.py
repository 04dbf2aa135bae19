"""`new_tasks_sensor`: the queue's only entry into Dagster.

Each evaluation (1) gives back tasks of runs that ended without finishing them, (2) relaunches
batches that were claimed but never got a run, under the same run key, and (3) claims pending
tasks in priority order into batches, one `execute_tasks` run each. The run key is the batch
key, so a tick that is evaluated twice launches nothing twice; the status column is the queue,
so a task committed late is still picked up.
"""

import json
import os
from collections.abc import Mapping

import dagster as dg

from juggernaut_assets.assets.task_runs import TASK_PARTITIONS
from juggernaut_assets.jobs.execute_tasks import BATCH_TAG, execute_tasks
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.tasks.claim import Batch, claim_tasks
from juggernaut_assets.tasks.reap import reap

SENSOR_INTERVAL_SECONDS = int(os.environ.get("JUGGERNAUT_SENSOR_INTERVAL_SECONDS", "10"))
PRUNE_EVERY = 1_000


def _run_lookup(instance: dg.DagsterInstance):  # type: ignore[no-untyped-def]
    def lookup(
        run_ids: list[str], batch_keys: list[str]
    ) -> tuple[Mapping[str, str], Mapping[str, str]]:
        by_run: dict[str, str] = {}
        by_batch: dict[str, str] = {}
        if run_ids:
            for run in instance.get_runs(dg.RunsFilter(run_ids=run_ids)):
                by_run[run.run_id] = run.status.value
        if batch_keys:
            for run in instance.get_runs(dg.RunsFilter(tags={BATCH_TAG: batch_keys})):
                by_batch[run.tags[BATCH_TAG]] = run.status.value
        return by_run, by_batch

    return lookup


def _fail_silent_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """A run that stopped heartbeating lost its process: say so on the run, too."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_failed(
            run, "new_tasks_sensor: the run worker stopped heartbeating; its tasks were released"
        )


def _run_request(batch: Batch, queue: TaskQueueResource) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=batch.key,
        run_config={"ops": {"execute_task_batch": {"config": {"batch_key": batch.key}}}},
        tags={
            BATCH_TAG: batch.key,
            "juggernaut/task_count": str(len(batch.task_ids)),
            "dagster/max_runtime": str(queue.run_max_runtime_seconds),
        },
    )


def _prune_requests(
    instance: dg.DagsterInstance, retention: int
) -> list[dg.DeleteDynamicPartitionsRequest]:
    keys = instance.get_dynamic_partitions(TASK_PARTITIONS.name or "")
    if len(keys) <= retention:
        return []
    return [
        dg.DeleteDynamicPartitionsRequest(
            partitions_def_name=TASK_PARTITIONS.name or "",
            partition_keys=keys[: len(keys) - retention],
        )
    ]


@dg.sensor(
    job=execute_tasks,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=__doc__,
)
def new_tasks_sensor(
    context: dg.SensorEvaluationContext,
    governance_db: GovernanceDB,
    task_queue: TaskQueueResource,
) -> dg.SensorResult:
    engine = governance_db.engine
    reaped = reap(engine, _run_lookup(context.instance))
    for run_id in reaped.silent_runs:
        _fail_silent_run(context.instance, run_id)
    claim = claim_tasks(
        engine, limit=task_queue.max_tasks_per_tick, batch_size=task_queue.batch_size
    )
    batches = reaped.lost_batches + claim.batches
    cursor = json.loads(context.cursor) if context.cursor else {}
    added = cursor.get("partitions_added", 0) + claim.claimed
    partition_requests: list = []
    if claim.claimed:
        partition_requests.append(
            dg.AddDynamicPartitionsRequest(
                partitions_def_name=TASK_PARTITIONS.name or "",
                partition_keys=[t for b in claim.batches for t in b.task_ids],
            )
        )
    if added >= PRUNE_EVERY:
        partition_requests += _prune_requests(context.instance, task_queue.partition_retention)
        added = 0
    seen = [f"{claim.scanned} due pending task(s) seen"]
    seen += [f"{n} {what.replace('_', ' ')}" for what, n in sorted(claim.outcomes.items())]
    if reaped.released:
        seen.append(f"{len(reaped.released)} task(s) of ended or silent runs released")
    if reaped.lost_batches:
        seen.append(f"{len(reaped.lost_batches)} unlaunched batch(es) relaunched")
    if reaped.live_workers:
        seen.append(f"{reaped.live_workers} executor run(s) still working")
    return dg.SensorResult(
        run_requests=[_run_request(b, task_queue) for b in batches],
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps({"partitions_added": added}),
        skip_reason=None if batches else "; ".join(seen),
    )

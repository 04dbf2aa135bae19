"""`new_tasks_sensor`: the queue's only entry into Dagster.

Each evaluation (1) gives back tasks of runs that ended without finishing them, (2) relaunches
batches that were claimed but never got a run, under the same run key, and (3) when fewer than
`max_executor_runs` executor runs are live, claims pending tasks in priority order into
batches, one `execute_tasks` run each. A live run claims its next batch itself, so a busy
queue does not wait for run start-ups. The run key is the batch key, so a tick that is
evaluated twice launches nothing twice; the status column is the queue, so a task committed
late is still picked up.
"""

import json
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from juggernaut_assets.assets.task_runs import TASK_PARTITIONS, task_details, task_event
from juggernaut_assets.db.models import utcnow
from juggernaut_assets.execution.record import (
    mark_events_reported,
    settled_outcomes,
    unreported_outcomes,
)
from juggernaut_assets.jobs.execute_tasks import BATCH_TAG, execute_tasks
from juggernaut_assets.jobs.task_feed import LAUNCHED_ELSEWHERE
from juggernaut_assets.lib.ui_text import ui_description
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.tasks.claim import (
    RUN_WORKER_PREFIX,
    Batch,
    ClaimResult,
    claim_tasks,
    due_pending,
)
from juggernaut_assets.tasks.lease import lease_duration
from juggernaut_assets.tasks.reap import RunInfo, RunStatusLookup, as_utc, reap

SENSOR_INTERVAL_SECONDS = int(os.environ.get("JUGGERNAUT_SENSOR_INTERVAL_SECONDS", "10"))
PRUNE_EVERY_TICKS = 30
"""Ticks between two checks of the `task_runs` partition count (runs add partitions too)."""
LIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _run_info(record: Any) -> RunInfo:
    run = record.dagster_run
    started = datetime.fromtimestamp(record.start_time, UTC) if record.start_time else None
    return RunInfo(run.run_id, run.status.value, started)


def _run_lookup(instance: dg.DagsterInstance) -> RunStatusLookup:
    def lookup(
        run_ids: list[str], batch_keys: list[str]
    ) -> tuple[Mapping[str, RunInfo], Mapping[str, RunInfo]]:
        by_run: dict[str, RunInfo] = {}
        by_batch: dict[str, RunInfo] = {}
        if run_ids:
            for record in instance.get_run_records(dg.RunsFilter(run_ids=run_ids)):
                by_run[record.dagster_run.run_id] = _run_info(record)
        if batch_keys:
            for record in instance.get_run_records(dg.RunsFilter(tags={BATCH_TAG: batch_keys})):
                by_batch[record.dagster_run.tags[BATCH_TAG]] = _run_info(record)
        return by_run, by_batch

    return lookup


SILENT_RUN = "new_tasks_sensor: the run worker stopped heartbeating; its tasks were released"
IDLE_DEAD_RUN = (
    "new_tasks_sensor: the run held no task and wrote no event for {seconds:.0f} s (a lease "
    "plus the idle wait): its worker is presumed gone; no task was lost"
)


def _stop_silent_run(
    context: dg.SensorEvaluationContext, run_id: str, reason: str = SILENT_RUN
) -> None:
    """A run that stopped heartbeating (or never took its batch) has lost its tasks: ask the
    launcher to terminate it, and mark it failed so it no longer holds a run slot. The run
    itself also stops before starting anything more once its lease is stale (`lease.py`)."""
    instance = context.instance
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        return
    try:
        instance.run_launcher.terminate(run_id)
    except Exception as exc:  # the process may be gone; the run is failed below either way
        context.log.warning(f"could not terminate run {run_id}: {exc}")
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_failed(run, reason)


def _worker_gone(instance: dg.DagsterInstance) -> Callable[[str | None, datetime | None], bool]:
    """Has the worker that recorded an outcome ended? A released task (no worker) counts as
    ended once its lease has passed, so a live run has had time to write its own event."""
    cache: dict[str, bool] = {}
    settled_before = utcnow() - lease_duration()

    def gone(worker: str | None, updated_at: datetime | None) -> bool:
        if not worker or not worker.startswith(RUN_WORKER_PREFIX):
            return updated_at is None or as_utc(updated_at) < settled_before
        run_id = worker.removeprefix(RUN_WORKER_PREFIX)
        if run_id not in cache:
            run = instance.get_run_by_id(run_id)
            cache[run_id] = run is None or run.is_finished
        return cache[run_id]

    return gone


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


def _idle_dead_runs(instance: dg.DagsterInstance, holding: set[str], quiet_s: float) -> list[str]:
    """STARTED executor runs that hold no task and have written no event for `quiet_s`.

    A healthy run holds the tasks it works on (their lease is fresh) and, between batches,
    polls for at most `run_idle_seconds` before it ends; a worker that died while idle leaves
    its run STARTED until the maximum runtime, which the Runs page would show as working.
    Queued and starting runs are left alone (a run queue may hold them for long).
    """
    records = instance.get_run_records(
        dg.RunsFilter(job_name=execute_tasks.name, statuses=[dg.DagsterRunStatus.STARTED])
    )
    cutoff = utcnow().timestamp() - quiet_s
    dead = []
    for record in records:
        run_id = record.dagster_run.run_id
        if run_id in holding or record.create_timestamp.timestamp() >= cutoff:
            continue
        latest = instance.get_records_for_run(run_id, limit=1, ascending=False).records
        if not latest or latest[0].timestamp < cutoff:
            dead.append(run_id)
    return dead


def _live_executor_runs(instance: dg.DagsterInstance, holding: set[str], young_s: float) -> int:
    """Executor runs that count against `max_executor_runs`: those that hold tasks with a fresh
    lease (or whose batch waits for them), and those younger than `young_s` (starting, or
    polling for their first work). A run that holds nothing for longer is between batches or
    idling out within `run_idle_seconds`, or dead: either way it must not keep the sensor from
    claiming (a dead one would block the queue until its maximum runtime)."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=execute_tasks.name, statuses=LIVE_RUN_STATUSES)
    )
    cutoff = utcnow().timestamp() - young_s
    return sum(
        1
        for r in records
        if r.dagster_run.run_id in holding or r.create_timestamp.timestamp() >= cutoff
    )


def _helper_runs(engine: Engine, queue: TaskQueueResource, free: int) -> list[Batch]:
    """Runs to add beside the live ones, for work the live runs are not taking yet.

    Live runs claim their next batches themselves, so no task is claimed for a run that has not
    started (its start-up takes seconds, while a live run would have done the task): a helper
    run starts with an empty batch and claims its work once it runs. One helper per
    `batch_size` due tasks beyond the first batch, up to the free slots. (A tick evaluated
    twice may start one helper too many; the next tick sees the cap.)
    """
    due = due_pending(
        engine, up_to=(free + 1) * queue.batch_size, exclude_task_types=LAUNCHED_ELSEWHERE
    )
    wanted = min(free, max(0, due // queue.batch_size - 1))
    return [Batch(uuid.uuid4().hex[:16], ()) for _ in range(wanted)]


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
    description=ui_description(__doc__),
)
def new_tasks_sensor(
    context: dg.SensorEvaluationContext,
    governance_db: GovernanceDB,
    task_queue: TaskQueueResource,
) -> dg.SensorResult:
    engine = governance_db.engine
    cursor = json.loads(context.cursor) if context.cursor else {}
    # Events returned by the previous tick are stored now (a tick's cursor is kept only once
    # its results are): their outcomes no longer need reporting.
    mark_events_reported(engine, cursor.get("reported", []))
    reaped = reap(engine, _run_lookup(context.instance))
    for run_id in reaped.silent_runs:
        _stop_silent_run(context, run_id)
    unreported = unreported_outcomes(engine, _worker_gone(context.instance))
    details = task_details(engine, [o.task_id for o in unreported]) if unreported else {}
    young_s = lease_duration().total_seconds() + task_queue.run_idle_seconds
    for run_id in _idle_dead_runs(context.instance, reaped.holding_runs, young_s):
        _stop_silent_run(context, run_id, IDLE_DEAD_RUN.format(seconds=young_s))
    live = _live_executor_runs(context.instance, reaped.holding_runs, young_s)
    free = max(0, task_queue.max_executor_runs - live - len(reaped.lost_batches))
    claim = ClaimResult()
    helpers: list[Batch] = []
    beside_live = bool(free and live and task_queue.claim_more)  # live runs claim themselves
    if beside_live:
        helpers = _helper_runs(engine, task_queue, free)
    elif free:
        claim = claim_tasks(
            engine,
            limit=min(task_queue.max_tasks_per_tick, free * task_queue.batch_size),
            batch_size=task_queue.batch_size,
            exclude_task_types=LAUNCHED_ELSEWHERE,
        )
    settled = settled_outcomes(claim.settled)
    if settled:
        # The daemon stores a result's asset events before its partition requests: the
        # partitions of tasks settled here must exist before their events do.
        context.instance.add_dynamic_partitions(
            TASK_PARTITIONS.name or "", [o.task_id for o in settled]
        )
        details |= task_details(engine, [o.task_id for o in settled])
    reported = unreported + settled
    batches = reaped.lost_batches + claim.batches + helpers
    ticks = cursor.get("ticks", 0) + 1
    partition_requests: list = []
    if claim.claimed:
        partition_requests.append(
            dg.AddDynamicPartitionsRequest(
                partitions_def_name=TASK_PARTITIONS.name or "",
                partition_keys=[t for b in claim.batches for t in b.task_ids],
            )
        )
    if ticks % PRUNE_EVERY_TICKS == 0:
        partition_requests += _prune_requests(context.instance, task_queue.partition_retention)
    seen = [f"{claim.scanned} due pending task(s) seen"] if free and not beside_live else []
    if beside_live:
        seen.append(f"{live} executor run(s) working; not enough waiting work for another")
    if not free:
        seen.append(
            f"{live} executor run(s) working (at most {task_queue.max_executor_runs}): "
            "they claim the next tasks themselves"
        )
    seen += [f"{n} {what.replace('_', ' ')}" for what, n in sorted(claim.outcomes.items())]
    if reaped.released:
        seen.append(f"{len(reaped.released)} task(s) of ended or silent runs released")
    if reaped.lost_batches:
        seen.append(f"{len(reaped.lost_batches)} unlaunched batch(es) relaunched")
    if reaped.live_workers and free:
        seen.append(f"{reaped.live_workers} executor run(s) still working")
    if unreported:
        seen.append(f"{len(unreported)} outcome event(s) reported after their run ended")
    return dg.SensorResult(
        run_requests=[_run_request(b, task_queue) for b in batches],
        dynamic_partitions_requests=partition_requests,
        asset_events=[task_event(o, details.get(o.task_id)) for o in reported],
        cursor=json.dumps({"ticks": ticks, "reported": [o.task_id for o in reported]}),
        skip_reason=None if batches else "; ".join(seen),
    )

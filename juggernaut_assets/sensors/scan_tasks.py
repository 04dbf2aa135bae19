"""`scan_tasks_sensor`: every `scan` task becomes its own asset run, through the run queue.

Each evaluation (1) settles scan tasks whose run has ended (a backstop for the run-status
sensors in `scan_runs.py`, e.g. after the daemon was down), (2) requests again, under the same
run key, the runs of scans handed over on a tick whose run request was lost, and (3) claims
pending `scan` tasks: a payload that names no scannable asset or partition fails its task right
here; every other task is handed to a run key and its asset's run is requested, tagged with the
task's id. The run goes through the instance's queue, concurrency limits and run monitoring like
any other run, with the code location's own resources.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg
from sqlalchemy.engine import Engine

from juggernaut_assets.assets.task_runs import TASK_PARTITIONS, task_details, task_event
from juggernaut_assets.execution.outcome import TaskOutcome, TaskRejected
from juggernaut_assets.execution.record import mark_events_reported
from juggernaut_assets.execution.scan import (
    SCAN_KEY_TAG,
    SCAN_TASK_TYPES,
    HeldScan,
    Scannable,
    ScanTarget,
    hand_to_run,
    held_scans,
    read_tasks,
    reject_claimed,
    resolve_target,
    run_tags,
    settle_scan_run,
)
from juggernaut_assets.lib.ui_text import ui_description
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.sensors.new_tasks import SENSOR_INTERVAL_SECONDS
from juggernaut_assets.tasks.claim import claim_tasks
from juggernaut_assets.tasks.payloads import PayloadError

SCANNABLE = dg.AssetSelection.all()
"""Every materialisable asset of the code location (`task_runs` is external: not scannable)."""


def scannable_assets(repository: dg.RepositoryDefinition) -> Scannable:
    graph = repository.asset_graph
    return {key: graph.get(key).partitions_def for key in SCANNABLE.resolve(graph)}


def report(instance: dg.DagsterInstance, engine: Engine, outcomes: Iterable[TaskOutcome]) -> int:
    """Write each recorded outcome's `task_runs` event; returns how many were written."""
    recorded = [o for o in outcomes if o.recorded]
    details = task_details(engine, [o.task_id for o in recorded])
    written = []
    for outcome in recorded:
        instance.report_runless_asset_event(task_event(outcome, details.get(outcome.task_id)))
        written.append(outcome.task_id)
    mark_events_reported(engine, written)
    return len(written)


def scan_run_request(task_id: str, key: str, target: ScanTarget, max_runtime: int) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=key,
        asset_selection=[target.asset_key],
        partition_key=target.partition,
        tags={**run_tags(task_id, key), "dagster/max_runtime": str(max_runtime)},
    )


def _runs_by_key(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, dg.DagsterRun]:
    if not keys:
        return {}
    runs = instance.get_runs(dg.RunsFilter(tags={SCAN_KEY_TAG: keys}))
    return {run.tags[SCAN_KEY_TAG]: run for run in runs}


@dataclass
class _Tick:
    """What one evaluation did: outcomes to report, runs to request, and counts to explain."""

    instance: dg.DagsterInstance
    engine: Engine
    scannable: Scannable
    max_runtime: int
    outcomes: list[TaskOutcome] = field(default_factory=list)
    requests: list[dg.RunRequest] = field(default_factory=list)
    running: int = 0
    relaunched: int = 0

    def target(self, task: HeldScan) -> ScanTarget | None:
        """What the task's payload names, or None after failing the task when it names nothing
        this code location can scan."""
        try:
            return resolve_target(task.payload, self.scannable, self.instance)
        except (PayloadError, TaskRejected) as exc:
            self.outcomes.append(reject_claimed(self.engine, task, str(exc)))
            return None

    def request(self, task_id: str, key: str, target: ScanTarget) -> None:
        self.requests.append(scan_run_request(task_id, key, target, self.max_runtime))

    def follow_up(self, held: list[HeldScan]) -> None:
        """Settle the scans whose run ended; request again the runs that were never created."""
        runs = _runs_by_key(self.instance, [t.key for t in held])
        for task in held:
            run = runs.get(task.key)
            if run is not None and run.is_finished:
                outcome = settle_scan_run(self.engine, self.instance, run)
                self.outcomes += [outcome] if outcome else []
            elif run is not None:
                self.running += 1
            elif target := self.target(task):
                self.request(task.task_id, task.key, target)
                self.relaunched += 1

    def launch(self, claimed: list[HeldScan]) -> None:
        """Fail the claimed tasks that name nothing to scan; hand the others to their run."""
        for task in claimed:
            target = self.target(task)
            if target and hand_to_run(self.engine, task.task_id, task.key) is not None:
                self.request(task.task_id, task.key, target)


@dg.sensor(
    asset_selection=SCANNABLE,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=ui_description(__doc__),
)
def scan_tasks_sensor(
    context: dg.SensorEvaluationContext,
    governance_db: GovernanceDB,
    task_queue: TaskQueueResource,
) -> dg.SensorResult | dg.SkipReason:
    if context.repository_def is None:
        return dg.SkipReason("no code location to resolve scan targets against")
    engine = governance_db.engine
    tick = _Tick(
        context.instance,
        engine,
        scannable_assets(context.repository_def),
        task_queue.run_max_runtime_seconds,
    )
    tick.follow_up(held_scans(engine))
    claim = claim_tasks(
        engine, limit=task_queue.max_tasks_per_tick, batch_size=1, task_types=SCAN_TASK_TYPES
    )
    claimed = [t for b in claim.batches for t in read_tasks(engine, list(b.task_ids))]
    tick.launch(claimed)
    settled = report(context.instance, engine, tick.outcomes)

    seen = [f"{claim.scanned} due pending scan task(s) seen"]
    seen += [f"{n} {what.replace('_', ' ')}" for what, n in sorted(claim.outcomes.items())]
    if settled:
        seen.append(f"{settled} scan task(s) settled")
    if tick.running:
        seen.append(f"{tick.running} scan run(s) still going")
    if tick.relaunched:
        seen.append(f"{tick.relaunched} lost scan run request(s) made again")
    partitions = [
        dg.AddDynamicPartitionsRequest(
            partitions_def_name=TASK_PARTITIONS.name or "",
            partition_keys=[t.task_id for t in claimed],
        )
    ]
    return dg.SensorResult(
        run_requests=tick.requests,
        dynamic_partitions_requests=partitions if claimed else [],
        skip_reason=None if tick.requests else "; ".join(seen),
    )

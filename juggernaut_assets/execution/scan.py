"""`scan` tasks: each one is its own asset run, launched by `scan_tasks_sensor` and settled
when that run ends.

The life of a scan: the sensor claims the task, checks its payload against the code location's
asset graph (`resolve_target`), hands it to a run key (`hand_to_run`: the attempt is counted
here) and requests the asset's run through the instance's queue, tagged with the task. When the
run has ended, `settle_scan_run` verifies the materialisation (`verify.py`) and records the
outcome exactly as the executor records any other task's. Nothing here imports the
definitions: the asset graph and the instance are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets import settings
from juggernaut_assets.db.enums import ArtifactKind, TaskStatus
from juggernaut_assets.db.models import GovernanceTask, utcnow
from juggernaut_assets.execution.outcome import Artifact, Ending, TaskOutcome, TaskRejected
from juggernaut_assets.execution.record import record_outcome
from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.tasks.claim import SCAN_WORKER_PREFIX, batch_worker, scan_worker
from juggernaut_assets.tasks.payloads import ScanPayload, validate_payload

T = GovernanceTask.__table__

TASK_TAG = "juggernaut/task_id"
TASK_TYPE_TAG = "juggernaut/task_type"
SCAN_KEY_TAG = "juggernaut/scan_key"
"""The run key the scan was handed to; its task's worker is `dagster-scan:<key>`."""
PARTITION_TAG = "dagster/partition"
SCAN_TASK_TYPES = frozenset({HandlerName.SCAN.value})
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class ScanTarget:
    """What a scan materialises: one asset, and one partition when the asset is partitioned."""

    asset_key: dg.AssetKey
    partition: str | None

    @property
    def asset(self) -> str:
        return self.asset_key.to_user_string()


Scannable = Mapping[dg.AssetKey, dg.PartitionsDefinition | None]
"""The assets a scan may name, each with its partitions definition (None: unpartitioned)."""


@dataclass(frozen=True)
class HeldScan:
    """A scan task in progress: claimed (`dagster-batch:<key>`) or handed to its run
    (`dagster-scan:<key>`); `payload` is the raw JSON text."""

    task_id: str
    task_type: str
    worker: str
    payload: str | None
    attempt: int

    @property
    def key(self) -> str:
        return self.worker.split(":", 1)[-1]


def _partition(
    name: str,
    partitions: dg.PartitionsDefinition | None,
    partition: str | None,
    instance: dg.DagsterInstance,
) -> str | None:
    if partitions is None:
        if partition:
            raise TaskRejected(f"asset {name} is not partitioned (got partition '{partition}')")
        return None
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        if partition is None:
            latest = partitions.get_last_partition_key()
            if latest is None:
                raise TaskRejected(f"asset {name} has no partitions yet")
            return latest
        if not partitions.has_partition_key(partition):
            example = partitions.get_last_partition_key()
            raise TaskRejected(
                f"'{partition}' is not a partition of {name} (e.g. {example or 'none yet'})"
            )
    return partition


def resolve_target(
    raw_payload: object, scannable: Scannable, instance: dg.DagsterInstance
) -> ScanTarget:
    """The asset and partition a scan payload names, checked against the code location.

    Raises `PayloadError` for a malformed payload and `TaskRejected` for an asset that is not
    scannable or a partition it does not have; no partition means the latest one.
    """
    payload = validate_payload(ScanPayload, raw_payload)
    key = dg.AssetKey.from_user_string(payload.asset)
    if key not in scannable:
        names = sorted(k.to_user_string() for k in scannable)
        raise TaskRejected(f"unknown asset '{payload.asset}'; scannable assets: {', '.join(names)}")
    return ScanTarget(key, _partition(payload.asset, scannable[key], payload.partition, instance))


def run_tags(task_id: str, key: str) -> dict[str, str]:
    """The tags that tie an asset run to its scan task (shown in the UI, used to settle)."""
    return {TASK_TAG: task_id, TASK_TYPE_TAG: HandlerName.SCAN.value, SCAN_KEY_TAG: key}


def hand_to_run(engine: Engine, task_id: str, key: str) -> int | None:
    """Move a claimed task from its batch to the run key `key` and count the attempt.

    The sensor requests the run right after; the run starts the task, so this is the attempt.
    Returns the attempt number, or None when the batch no longer holds the task.
    """
    now = utcnow()
    with engine.begin() as conn:
        return conn.execute(
            T.update()
            .where(
                T.c.id == task_id,
                T.c.status == TaskStatus.IN_PROGRESS.value,
                T.c.assigned_worker == batch_worker(key),
            )
            .values(
                assigned_worker=scan_worker(key),
                attempt_count=sa.func.coalesce(T.c.attempt_count, 0) + 1,
                started_at=now,
                updated_at=now,
            )
            .returning(T.c.attempt_count)
        ).scalar_one_or_none()


def read_tasks(engine: Engine, task_ids: list[str]) -> list[HeldScan]:
    """The claimed tasks with their raw payload text (decoded per task, never per batch)."""
    return _held(engine, T.c.id.in_(task_ids))


def held_scans(engine: Engine) -> list[HeldScan]:
    """Every scan task in progress under a run key."""
    return _held(engine, T.c.assigned_worker.startswith(SCAN_WORKER_PREFIX))


def _held(engine: Engine, where: sa.ColumnElement[bool]) -> list[HeldScan]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                T.c.id,
                T.c.task_type,
                T.c.assigned_worker,
                sa.cast(T.c.payload, sa.Text).label("payload"),
                T.c.attempt_count,
            ).where(where, T.c.status == TaskStatus.IN_PROGRESS.value)
        ).all()
    return [
        HeldScan(
            str(r.id), r.task_type or "", r.assigned_worker or "", r.payload, r.attempt_count or 0
        )
        for r in rows
    ]


def reject_claimed(engine: Engine, task: HeldScan, reason: str) -> TaskOutcome:
    """Fail a claimed scan whose payload cannot be run (before any run is requested)."""
    outcome = TaskOutcome(
        task_id=task.task_id,
        task_type=task.task_type,
        ending=Ending.FAILED,
        message=reason,
        attempt=task.attempt,
    )
    outcome.recorded = record_outcome(engine, outcome, task.worker)
    return outcome


TASK_RUNS_KEY = dg.AssetKey("task_runs")
TASK_LINK_METADATA = "juggernaut/task"
"""The materialisation metadata entry that links a scan's asset to the task that asked for it."""


def run_url(run_id: str) -> str:
    return f"{settings.dagster_ui_url()}/runs/{run_id}"


def asset_page_url(key: dg.AssetKey, **query: str | int | None) -> str:
    """An asset's page in the Dagster UI (`/assets/<path>?view=…&partition=…`, as the UI's own
    `assetDetailsPathForKey` builds it)."""
    path = "/".join(quote(part, safe="") for part in key.path)
    params = urlencode({k: v for k, v in query.items() if v is not None})
    return f"{settings.dagster_ui_url()}/assets/{path}" + (f"?{params}" if params else "")


TASK_FILTER_PARAM = "partitions[0]"
"""The events tab's partition filter, as Dagster's UI encodes it in the query string."""


def task_page_url(task_id: str) -> str:
    """The task's own page: the events of its `task_runs` partition, the latest one open.

    Not the partition tab: in Dagster 1.13 it shows only a partition's latest
    *materialisation*, so a failed, blocked or waiting task (an observation) would show
    "No metadata entries" there. The events tab filtered to the partition lists every attempt's
    event and opens the latest, whatever its kind, with its reason first.
    """
    return asset_page_url(
        TASK_RUNS_KEY, view="events", partition=task_id, **{TASK_FILTER_PARAM: task_id}
    )


def asset_url(target: ScanTarget, timestamp: float | None = None) -> str:
    """The materialisation in the asset's event history (focused on it when its time is known)."""
    time = int(timestamp * 1000) if timestamp is not None else None
    return asset_page_url(target.asset_key, view="events", partition=target.partition, time=time)


def scan_provenance(tags: Mapping[str, str]) -> dict[str, dg.MetadataValue]:
    """Materialisation metadata naming the scan task of this run (empty for any other run)."""
    task_id = tags.get(TASK_TAG)
    if not task_id:
        return {}
    return {TASK_LINK_METADATA: dg.MetadataValue.url(task_page_url(task_id))}


def _materialized_at(instance: dg.DagsterInstance, run_id: str, target: ScanTarget) -> float | None:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = record.dagster_event
        if event and event.asset_key == target.asset_key and event.partition == target.partition:
            return record.timestamp
    return None


def run_target(run: dg.DagsterRun) -> ScanTarget | None:
    """The asset (and partition) a scan run was launched for."""
    keys = sorted(run.asset_selection or [], key=lambda k: k.to_user_string())
    if len(keys) != 1:
        return None
    return ScanTarget(keys[0], run.tags.get(PARTITION_TAG))


def _failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first step failure's message, else the run failure's."""
    records = instance.all_logs(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    )
    for record in records:
        event = record.dagster_event
        if event is None or not event.is_step_failure:
            continue
        failure = event.step_failure_data
        if failure.user_failure_data and failure.user_failure_data.description:
            return f"{event.step_key}: {failure.user_failure_data.description.strip()}"
        error = failure.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            return f"{event.step_key}: {error.message.strip()}"
    messages = [r.dagster_event.message for r in records if r.dagster_event]
    return next((m for m in messages if m), "")


def _seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.start_time is None or record.end_time is None:
        return 0.0
    return max(0.0, record.end_time - record.start_time)


def scan_outcome(
    engine: Engine, instance: dg.DagsterInstance, run: dg.DagsterRun, task: HeldScan
) -> TaskOutcome:
    """What the ended run means for its task: completed only with a verified materialisation."""
    outcome = TaskOutcome(
        task_id=task.task_id,
        task_type=task.task_type,
        ending=Ending.RETRY,
        message="",
        attempt=task.attempt,
        duration_s=_seconds(instance, run.run_id),
    )
    target = run_target(run)
    if run.status is not dg.DagsterRunStatus.SUCCESS or target is None:
        reason = _failure_reason(instance, run.run_id)[:MAX_REASON_CHARS]
        outcome.message = (
            f"scan run {run.run_id} ended ({run.status.value})"
            + (f": {reason}" if reason else "")
            + f"; see {run_url(run.run_id)}"
        )
        return outcome
    materialization = asset_url(target, _materialized_at(instance, run.run_id, target))
    artifact = Artifact(
        kind=ArtifactKind.ASSET_MATERIALIZATION,
        uri=materialization,
        external_id=run.run_id,
        details={
            "asset": target.asset,
            "partition": target.partition,
            "asset_url": materialization,
            "run_url": run_url(run.run_id),
        },
    )
    outcome.artifacts = [artifact]
    problems = verify_artifacts(outcome.artifacts, VerifyEnv(engine, instance))
    if problems:
        outcome.message = "not completed, verification failed: " + "; ".join(problems)
        return outcome
    where = f" partition {target.partition}" if target.partition else ""
    warnings = artifact.details.get("warnings") or []
    outcome.ending = Ending.COMPLETED
    outcome.next_status = TaskStatus.COMPLETED
    outcome.message = f"materialised {target.asset}{where} in run {run.run_id}" + (
        f" ({len(warnings)} WARN check(s) failed: {'; '.join(warnings)})" if warnings else ""
    )
    return outcome


def settle_scan_run(
    engine: Engine, instance: dg.DagsterInstance, run: dg.DagsterRun
) -> TaskOutcome | None:
    """Record the outcome of a finished scan run on its task, if the run still holds it.

    Idempotent: the run-status sensors and the scan sensor's backstop may both call it; only
    the first one finds the task `in_progress` under `dagster-scan:<key>` and records.
    Returns the outcome when it was recorded.
    """
    task_id, key = run.tags.get(TASK_TAG), run.tags.get(SCAN_KEY_TAG)
    if not run.is_finished or not task_id or not key:
        return None
    held = [t for t in read_tasks(engine, [task_id]) if t.worker == scan_worker(key)]
    if not held:
        return None
    outcome = scan_outcome(engine, instance, run, held[0])
    outcome.recorded = record_outcome(engine, outcome, scan_worker(key))
    return outcome if outcome.recorded else None

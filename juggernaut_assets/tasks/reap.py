"""Finding tasks held by executor runs that are gone, and giving them back to the queue.

A run that fails, is cancelled, ends without recording a task, or is killed (its heartbeat
stops; see `lease.py`) leaves that task `in_progress`; the reaper releases it for retry. A run
that started but never took its batch within the lease (killed between start and take: the
default run launcher cannot see the dead process) is treated the same way. Silent runs are
reported back so the sensor can terminate them and mark them failed. A batch that was claimed
but whose run was never created is reported as lost, to be launched again under the same run
key (so it is never launched twice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.db.models import GovernanceTask, utcnow
from juggernaut_assets.tasks.claim import BATCH_WORKER_PREFIX, RUN_WORKER_PREFIX, Batch
from juggernaut_assets.tasks.lease import lease_duration
from juggernaut_assets.tasks.settle import Released, release_for_retry

T = GovernanceTask.__table__

FINISHED_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
STARTED_RUN_STATUS = "STARTED"
"""Set by the run worker itself once its process has loaded the code (`RUN_START`); from then
on it takes its batch within moments. (A run stuck in STARTING is run monitoring's to fail.)"""


@dataclass(frozen=True)
class RunInfo:
    """What the reaper needs to know about a run: its id, status and when it started."""

    run_id: str
    status: str
    started_at: datetime | None = None


RunStatusLookup = Callable[
    [list[str], list[str]], tuple[Mapping[str, RunInfo], Mapping[str, RunInfo]]
]
"""(run ids, batch keys) → ({run id: run}, {batch key: run}) for runs that exist."""


@dataclass
class ReapResult:
    released: list[Released] = field(default_factory=list)
    lost_batches: list[Batch] = field(default_factory=list)
    silent_runs: list[str] = field(default_factory=list)
    live_workers: int = 0
    holding_runs: set[str] = field(default_factory=set)
    """Runs that hold tasks (or whose batch waits for them) and are alive."""


@dataclass
class Held:
    task_ids: list[str] = field(default_factory=list)
    last_beat: datetime | None = None


def held_tasks(engine: Engine) -> dict[str, Held]:
    """In-progress tasks held by our executor, grouped by worker, with its last heartbeat."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(T.c.assigned_worker, T.c.id, T.c.updated_at).where(
                T.c.status == TaskStatus.IN_PROGRESS.value,
                sa.or_(
                    T.c.assigned_worker.startswith(RUN_WORKER_PREFIX),
                    T.c.assigned_worker.startswith(BATCH_WORKER_PREFIX),
                ),
            )
        ).all()
    grouped: dict[str, Held] = {}
    for worker, task_id, updated_at in rows:
        held = grouped.setdefault(worker, Held())
        held.task_ids.append(str(task_id))
        beat = as_utc(updated_at)
        if beat and (held.last_beat is None or beat > held.last_beat):
            held.last_beat = beat
    return grouped


def as_utc(value: datetime | None) -> datetime | None:
    """A timestamp from either database as an aware UTC datetime (SQLite returns naive)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def reap(
    engine: Engine,
    lookup: RunStatusLookup,
    *,
    lease: timedelta | None = None,
    now: datetime | None = None,
) -> ReapResult:
    """Release tasks whose run has finished, vanished, stopped heartbeating or never took its
    batch; report batches that have no run yet."""
    lease = lease or lease_duration()
    now = now or utcnow()
    held = held_tasks(engine)
    run_ids = [w.removeprefix(RUN_WORKER_PREFIX) for w in held if w.startswith(RUN_WORKER_PREFIX)]
    keys = [w.removeprefix(BATCH_WORKER_PREFIX) for w in held if w.startswith(BATCH_WORKER_PREFIX)]
    by_run, by_batch = lookup(run_ids, keys) if held else ({}, {})
    result = ReapResult()
    with engine.begin() as conn:
        for worker, holding in held.items():
            if worker.startswith(RUN_WORKER_PREFIX):
                why = _why_run_lost(
                    worker.removeprefix(RUN_WORKER_PREFIX), holding, by_run, lease, now, result
                )
            else:
                why = _why_batch_lost(
                    worker.removeprefix(BATCH_WORKER_PREFIX), holding, by_batch, lease, now, result
                )
            if why is not None:
                result.released += release_for_retry(conn, holding.task_ids, why, worker=worker)
    return result


def _why_run_lost(
    run_id: str,
    holding: Held,
    by_run: Mapping[str, RunInfo],
    lease: timedelta,
    now: datetime,
    result: ReapResult,
) -> str | None:
    """Why the run's tasks must be released, or None while it is alive and heartbeating."""
    run = by_run.get(run_id)
    if run is None:
        return f"run {run_id} no longer exists"
    if run.status in FINISHED_RUN_STATUSES:
        return f"run {run_id} ended ({run.status})"
    silent = holding.last_beat is not None and now - holding.last_beat > lease
    if not silent:
        result.live_workers += 1
        result.holding_runs.add(run_id)
        return None
    result.silent_runs.append(run_id)
    return f"run {run_id} sent no heartbeat for {int(lease.total_seconds())} s"


def _why_batch_lost(
    key: str,
    holding: Held,
    by_batch: Mapping[str, RunInfo],
    lease: timedelta,
    now: datetime,
    result: ReapResult,
) -> str | None:
    """Why a claimed batch must be released, or None while its run may still take it."""
    run = by_batch.get(key)
    if run is None:
        result.lost_batches.append(Batch(key, tuple(holding.task_ids)))
        return None
    if run.status in FINISHED_RUN_STATUSES:
        return f"the run for batch {key} ended ({run.status}) before it took the task"
    started = as_utc(run.started_at)
    if run.status == STARTED_RUN_STATUS and started is not None and now - started > lease:
        result.silent_runs.append(run.run_id)
        return (
            f"run {run.run_id} started {int((now - started).total_seconds())} s ago and never "
            "took its batch"
        )
    result.live_workers += 1
    result.holding_runs.add(run.run_id)
    return None

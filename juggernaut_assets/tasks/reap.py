"""Finding tasks held by executor runs that are gone, and giving them back to the queue.

A run that fails, is cancelled, ends without recording a task, or is killed (its heartbeat
stops; see `lease.py`) leaves that task `in_progress`; the reaper releases it for retry. A batch
that was claimed but whose run was never created is reported as lost, to be launched again
under the same run key (so it is never launched twice).
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

RunStatusLookup = Callable[[list[str], list[str]], tuple[Mapping[str, str], Mapping[str, str]]]
"""(run ids, batch keys) → ({run id: status}, {batch key: status}) for runs that exist."""

FINISHED_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


@dataclass
class ReapResult:
    released: list[Released] = field(default_factory=list)
    lost_batches: list[Batch] = field(default_factory=list)
    silent_runs: list[str] = field(default_factory=list)
    live_workers: int = 0


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
        beat = _as_utc(updated_at)
        if beat and (held.last_beat is None or beat > held.last_beat):
            held.last_beat = beat
    return grouped


def _as_utc(value: datetime | None) -> datetime | None:
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
    """Release tasks whose run has finished, vanished or stopped heartbeating; report batches
    that have no run yet."""
    lease = lease or lease_duration()
    now = now or utcnow()
    held = held_tasks(engine)
    run_ids = [w.removeprefix(RUN_WORKER_PREFIX) for w in held if w.startswith(RUN_WORKER_PREFIX)]
    keys = [w.removeprefix(BATCH_WORKER_PREFIX) for w in held if w.startswith(BATCH_WORKER_PREFIX)]
    run_status, batch_status = lookup(run_ids, keys) if held else ({}, {})
    result = ReapResult()
    with engine.begin() as conn:
        for worker, holding in held.items():
            task_ids = holding.task_ids
            if worker.startswith(RUN_WORKER_PREFIX):
                run_id = worker.removeprefix(RUN_WORKER_PREFIX)
                status = run_status.get(run_id)
                silent = holding.last_beat is not None and now - holding.last_beat > lease
                if status is not None and status not in FINISHED_RUN_STATUSES:
                    if not silent:
                        result.live_workers += 1
                        continue
                    result.silent_runs.append(run_id)
                    why = f"run {run_id} sent no heartbeat for {int(lease.total_seconds())} s"
                else:
                    why = f"run {run_id} " + (f"ended ({status})" if status else "no longer exists")
            else:
                key = worker.removeprefix(BATCH_WORKER_PREFIX)
                status = batch_status.get(key)
                if status is None:
                    result.lost_batches.append(Batch(key, tuple(task_ids)))
                    continue
                if status not in FINISHED_RUN_STATUSES:
                    result.live_workers += 1
                    continue
                why = f"the run for batch {key} ended ({status}) before it took the task"
            result.released += release_for_retry(
                conn, task_ids, f"{why} before the task finished", worker=worker
            )
    return result

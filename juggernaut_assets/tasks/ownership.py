"""Who holds a task, and the fencing that keeps one task in one run.

A claimed task is held by its batch (`dagster-batch:<key>`); the run that carries the batch
takes it (`dagster-run:<run id>`), then starts each task in turn. Starting a task is the moment
an attempt is counted: a task whose run never got to it has used no attempt.

Fencing: before any side effect (a tool call, a pull request, an outcome) the run re-checks,
in the same transaction that records the effect, that it still holds the task *and* that its
lease is fresh. The reaper releases a silent run's tasks only after `LEASE_MISSES` missed
heartbeats, while a run stops starting side effects after `FENCE_MISSES` (half as many), so a
side effect begun under a valid lease ends before anyone else may take the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.db.models import GovernanceTask, utcnow
from juggernaut_assets.tasks.claim import RUN_ORDER, batch_worker, run_worker
from juggernaut_assets.tasks.lease import FENCE_MISSES, heartbeat_interval

T = GovernanceTask.__table__


class LeaseLost(Exception):
    """This run no longer holds the task (released, re-claimed, or its lease went stale)."""


@dataclass(frozen=True)
class TakenTask:
    """A task a run took from its batch; `payload` is the raw JSON text, decoded per task."""

    id: str
    task_type: str
    payload: str | None


def take_batch(engine: Engine, batch_key: str, run_id: str) -> list[TakenTask]:
    """Move the batch's tasks from the batch to this run; returns the tasks it now holds.

    Only tasks still `in_progress` under the batch's name are taken, so a task released by the
    reaper (or taken by another run of the same batch) is never executed here. The payload is
    read as text: a row whose JSON cannot be decoded fails its own task later, not the batch.
    """
    now = utcnow()
    worker = run_worker(run_id)
    with engine.begin() as conn:
        conn.execute(
            T.update()
            .where(
                T.c.assigned_worker == batch_worker(batch_key),
                T.c.status == TaskStatus.IN_PROGRESS.value,
            )
            .values(assigned_worker=worker, updated_at=now)
        )
        rows = conn.execute(
            sa.select(T.c.id, T.c.task_type, sa.cast(T.c.payload, sa.Text).label("payload"))
            .where(T.c.assigned_worker == worker, T.c.status == TaskStatus.IN_PROGRESS.value)
            .order_by(*RUN_ORDER)
        ).all()
    return [TakenTask(str(r.id), r.task_type or "", r.payload) for r in rows]


def fence_cutoff(now: datetime | None = None) -> datetime:
    """Leases renewed before this instant are too old to start a side effect under."""
    return (now or utcnow()) - timedelta(seconds=heartbeat_interval() * FENCE_MISSES)


def _held(task_id: str, worker: str, now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        T.c.id == task_id,
        T.c.status == TaskStatus.IN_PROGRESS.value,
        T.c.assigned_worker == worker,
        T.c.updated_at >= fence_cutoff(now),
    )


def start_tasks(engine: Engine, task_ids: list[str], worker: str) -> dict[str, int]:
    """Count an attempt for each task this run still holds and mark it started, in one
    transaction; returns the attempt number of each task started (the others are omitted:
    released or taken meanwhile).

    The executor starts fast tasks in chunks (`phases.ChunkSizer`), so `started_at` is when the
    chunk started. A killed run has counted an attempt for every task of its chunk, the one
    that killed it included; a run that stops in an orderly way gives back the attempts of the
    tasks it had not begun (`unstart_tasks`).
    """
    if not task_ids:
        return {}
    now = utcnow()
    with engine.begin() as conn:
        rows = conn.execute(
            T.update()
            .where(
                T.c.id.in_(task_ids),
                T.c.status == TaskStatus.IN_PROGRESS.value,
                T.c.assigned_worker == worker,
                T.c.updated_at >= fence_cutoff(now),
            )
            .values(
                attempt_count=sa.func.coalesce(T.c.attempt_count, 0) + 1,
                started_at=now,
                updated_at=now,
            )
            .returning(T.c.id, T.c.attempt_count)
        ).all()
    return {str(r.id): int(r.attempt_count) for r in rows}


def start_task(engine: Engine, task_id: str, worker: str) -> int:
    """Count this attempt and mark the task started; returns the attempt number.

    Raises `LeaseLost` when the run no longer holds the task.
    """
    attempt = start_tasks(engine, [task_id], worker).get(task_id)
    if attempt is None:
        raise LeaseLost(f"task {task_id} is no longer held by {worker}")
    return attempt


def unstart_tasks(conn: Connection, task_ids: list[str], worker: str) -> None:
    """Give back the attempt of started tasks whose handler never ran (the run is stopping),
    so that `release_for_retry` treats them as not started."""
    if not task_ids:
        return
    conn.execute(
        T.update()
        .where(
            T.c.id.in_(task_ids),
            T.c.status == TaskStatus.IN_PROGRESS.value,
            T.c.assigned_worker == worker,
        )
        .values(attempt_count=sa.func.coalesce(T.c.attempt_count, 1) - 1, started_at=None)
    )


def assert_holds(conn: Connection, task_id: str, worker: str) -> None:
    """Fencing check inside the caller's transaction: lock the task row, or raise `LeaseLost`."""
    held = conn.execute(
        sa.select(T.c.id).where(_held(task_id, worker, utcnow())).with_for_update()
    ).scalar_one_or_none()
    if held is None:
        raise LeaseLost(f"task {task_id} is no longer held by {worker}: side effect not started")

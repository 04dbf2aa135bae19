"""Moving tasks between states after a claim: release for retry, and operator decisions.

Every transition is a compare-and-set on the task's current status (and worker, where one
holds it), so a late or repeated call never overwrites a newer state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.db.models import GovernanceTask, utcnow
from juggernaut_assets.tasks.rules import DEFAULT_MAX_ATTEMPTS, RETRY_BASE, retry_delay

T = GovernanceTask.__table__


class TransitionError(ValueError):
    """The task is not in a state that allows this operation."""


@dataclass(frozen=True)
class Released:
    task_id: str
    status: TaskStatus
    next_retry_at: datetime | None


def _started(row: sa.Row) -> bool:
    """Did a run start this attempt? (`started_at` is set when a run starts the task.)"""
    if row.started_at is None or row.assigned_at is None:
        return False
    return _naive(row.started_at) >= _naive(row.assigned_at)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def release_for_retry(
    conn: Connection,
    task_ids: Iterable[str],
    error: str,
    *,
    worker: str | None = None,
    now: datetime | None = None,
) -> list[Released]:
    """Give in-progress tasks back to the queue after an attempt that did not finish.

    A task whose attempt had started goes back to `pending` with an exponential
    `next_retry_at`, or to `failed` once its attempts reach `max_attempts`. A task that no run
    had started yet used no attempt: it goes back to `pending` (after the base delay) and says
    so. With `worker`, only tasks still held by that worker are touched.
    """
    now = now or utcnow()
    ids = list(task_ids)
    if not ids:
        return []
    query = sa.select(
        T.c.id, T.c.attempt_count, T.c.max_attempts, T.c.started_at, T.c.assigned_at
    ).where(T.c.id.in_(ids), T.c.status == TaskStatus.IN_PROGRESS.value)
    if worker is not None:
        query = query.where(T.c.assigned_worker == worker)
    released = []
    for row in conn.execute(query.with_for_update()).all():
        attempts = row.attempt_count or 0
        max_attempts = row.max_attempts or DEFAULT_MAX_ATTEMPTS
        if not _started(row):
            values = {
                "status": TaskStatus.PENDING.value,
                "error_message": f"not started: {error} (no attempt used)",
                "next_retry_at": now + RETRY_BASE,
            }
        elif attempts >= max_attempts:
            values = {
                "status": TaskStatus.FAILED.value,
                "error_message": f"gave up after {attempts} attempt(s): {error}",
                "failure_reason": error,
                "next_retry_at": None,
                "completed_at": now,
            }
        else:
            values = {
                "status": TaskStatus.PENDING.value,
                "error_message": f"attempt {attempts} of {max_attempts} did not finish: {error}",
                "next_retry_at": now + retry_delay(attempts),
            }
        conn.execute(
            T.update()
            .where(T.c.id == row.id, T.c.status == TaskStatus.IN_PROGRESS.value)
            .values(assigned_worker=None, updated_at=now, **values)
        )
        released.append(
            Released(str(row.id), TaskStatus(values["status"]), values["next_retry_at"])
        )
    return released


def _transition(
    engine: Engine, task_id: str, allowed: set[TaskStatus], action: str, **values: object
) -> None:
    with engine.begin() as conn:
        current = conn.execute(
            sa.select(T.c.status).where(T.c.id == task_id).with_for_update()
        ).scalar_one_or_none()
        if current is None:
            raise TransitionError(f"task {task_id} does not exist")
        if current not in allowed:
            names = ", ".join(sorted(allowed))
            raise TransitionError(f"cannot {action} task {task_id}: it is {current}, not {names}")
        conn.execute(T.update().where(T.c.id == task_id).values(updated_at=utcnow(), **values))


def approve(engine: Engine, task_id: str, who: str) -> None:
    """An operator approves a task waiting for approval; it runs on the next tick."""
    now = utcnow()
    _transition(
        engine,
        task_id,
        {TaskStatus.WAITING_APPROVAL},
        "approve",
        status=TaskStatus.PENDING.value,
        approved_by=who,
        approved_at=now,
        error_message=None,
        next_retry_at=None,
    )


def deny(engine: Engine, task_id: str, who: str, reason: str | None = None) -> None:
    """An operator denies a task waiting for approval; it is cancelled, never run."""
    now = utcnow()
    message = f"denied by {who}" + (f": {reason}" if reason else "")
    _transition(
        engine,
        task_id,
        {TaskStatus.WAITING_APPROVAL},
        "deny",
        status=TaskStatus.CANCELLED.value,
        approved_by=who,
        approved_at=now,
        error_message=message,
        failure_reason=message,
        completed_at=now,
    )


def retry(engine: Engine, task_id: str) -> None:
    """Put a blocked or failed task back in the queue with a fresh attempt budget."""
    _transition(
        engine,
        task_id,
        {TaskStatus.BLOCKED, TaskStatus.FAILED, TaskStatus.WAITING_APPROVAL},
        "retry",
        status=TaskStatus.PENDING.value,
        attempt_count=0,
        next_retry_at=None,
        error_message=None,
        failure_reason=None,
        completed_at=None,
        assigned_worker=None,
    )

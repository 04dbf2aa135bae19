"""Claiming pending tasks atomically, in priority order, in batches for executor runs.

The `status` column is the queue: whatever is `pending` and due is a candidate, whatever id it
has and whenever it was committed. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so two
claimers never take the same row; SQLite claims inside one `BEGIN IMMEDIATE` transaction (one
writer). A partial index on pending rows keeps a claim cheap however much history there is.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from juggernaut_assets.db.enums import PRIORITY_ORDER, TaskStatus
from juggernaut_assets.db.models import GovernanceTask, utcnow
from juggernaut_assets.tasks.rules import (
    DEFAULT_MAX_ATTEMPTS,
    Candidate,
    Readiness,
    all_dependency_ids,
    judge,
)

BATCH_WORKER_PREFIX = "dagster-batch:"
RUN_WORKER_PREFIX = "dagster-run:"
SCAN_WORKER_PREFIX = "dagster-scan:"

T = GovernanceTask.__table__


def batch_worker(batch_key: str) -> str:
    return f"{BATCH_WORKER_PREFIX}{batch_key}"


def run_worker(run_id: str) -> str:
    return f"{RUN_WORKER_PREFIX}{run_id}"


def scan_worker(run_key: str) -> str:
    """The worker of a `scan` task handed to its own asset run (run key `run_key`)."""
    return f"{SCAN_WORKER_PREFIX}{run_key}"


@dataclass(frozen=True)
class Batch:
    key: str
    task_ids: tuple[str, ...]


@dataclass(frozen=True)
class Settled:
    """A candidate the claim settled instead of claiming (blocked, waiting, failed)."""

    task_id: str
    task_type: str
    status: TaskStatus
    reason: str
    attempt: int


@dataclass
class ClaimResult:
    batches: list[Batch] = field(default_factory=list)
    settled: list[Settled] = field(default_factory=list)
    scanned: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def claimed(self) -> int:
        return sum(len(b.task_ids) for b in self.batches)


_rank = sa.case(
    {label: rank for rank, label in enumerate(PRIORITY_ORDER)},
    value=T.c.priority,
    else_=PRIORITY_ORDER.index("medium"),
)
RUN_ORDER = (_rank, T.c.created_at, T.c.id)
"""critical > high > medium > normal > low > background, then oldest first."""

_NOT_CLAIMED_STATUS = {
    Readiness.BLOCK: TaskStatus.BLOCKED,
    Readiness.NEEDS_APPROVAL: TaskStatus.WAITING_APPROVAL,
    Readiness.NO_HANDLER: TaskStatus.WAITING_APPROVAL,
    Readiness.NO_ATTEMPTS_LEFT: TaskStatus.FAILED,
}

_OPEN_STATUSES = tuple(
    s.value
    for s in TaskStatus
    if s not in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
)
_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _no_open_dependency(dialect: str) -> sa.TextClause:
    """False for a task with a dependency that exists and is still open (not completed, failed
    or cancelled): such a task is not a candidate yet, so it cannot crowd out ready ones.

    Each listed id is looked up by primary key in a scalar subquery (a join would let the
    planner scan every open task once per candidate). A `depends_on` that is not a JSON array
    (or not JSON at all) is left to `rules.judge`.
    """
    statuses = ", ".join(f"'{s}'" for s in _OPEN_STATUSES)
    if dialect == "postgresql":
        return sa.text(
            "NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN "
            "jsonb_typeof(governance_tasks.depends_on::jsonb) = 'array' THEN "
            "governance_tasks.depends_on::jsonb ELSE '[]'::jsonb END) AS d(dep_id) "
            "WHERE (SELECT dep.status FROM governance_tasks AS dep WHERE dep.id = CASE WHEN "
            f"d.dep_id ~ '{_UUID_PATTERN}' THEN d.dep_id::uuid END) IN ({statuses}))"
        )
    return sa.text(
        "NOT EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(governance_tasks.depends_on) "
        "THEN CASE WHEN json_type(governance_tasks.depends_on) = 'array' THEN "
        "governance_tasks.depends_on END END) AS d "
        "WHERE (SELECT dep.status FROM governance_tasks AS dep WHERE dep.id = d.value) "
        f"IN ({statuses}))"
    )


def _type_filter(
    task_types: Collection[str] | None, exclude_task_types: Collection[str] | None
) -> list[sa.ColumnElement[bool]]:
    normalized = sa.func.lower(sa.func.trim(sa.func.coalesce(T.c.task_type, "")))
    filters = []
    if task_types is not None:
        filters.append(normalized.in_(sorted({t.lower() for t in task_types})))
    if exclude_task_types:
        filters.append(normalized.not_in(sorted({t.lower() for t in exclude_task_types})))
    return filters


def _candidates(
    conn: Connection, now: datetime, scan_limit: int, filters: list[sa.ColumnElement[bool]]
) -> list[Candidate]:
    query = (
        sa.select(
            T.c.id,
            T.c.task_type,
            sa.cast(T.c.depends_on, sa.Text).label("depends_on"),
            T.c.requires_approval,
            T.c.approved_at,
            T.c.approval_reason,
            T.c.attempt_count,
            T.c.max_attempts,
        )
        .where(T.c.status == TaskStatus.PENDING.value)
        .where(sa.or_(T.c.next_retry_at.is_(None), T.c.next_retry_at <= now))
        .where(*filters)
        .where(_no_open_dependency(conn.dialect.name))
        .order_by(*RUN_ORDER)
        .limit(scan_limit)
    )
    return [Candidate(**row._mapping) for row in conn.execute(query)]


def due_pending(
    engine: Engine,
    *,
    up_to: int,
    exclude_task_types: Collection[str] | None = None,
    now: datetime | None = None,
) -> int:
    """How many pending tasks are due now, counted up to `up_to` (an index-only probe of the
    pending rows, not a count of the whole queue)."""
    now = now or utcnow()
    probe = (
        sa.select(T.c.id)
        .where(T.c.status == TaskStatus.PENDING.value)
        .where(sa.or_(T.c.next_retry_at.is_(None), T.c.next_retry_at <= now))
        .where(*_type_filter(None, exclude_task_types))
        .limit(up_to)
        .subquery()
    )
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar_one())


def _lock_ready(conn: Connection, ready: list[str], limit: int) -> list[str]:
    """Lock up to `limit` of the ready tasks that are still pending and not locked by another
    claimer (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite already holds its single writer lock).
    """
    if not ready:
        return []
    query = (
        sa.select(T.c.id)
        .where(T.c.id.in_(ready), T.c.status == TaskStatus.PENDING.value)
        .where(
            sa.func.coalesce(T.c.attempt_count, 0)
            < sa.func.coalesce(T.c.max_attempts, DEFAULT_MAX_ATTEMPTS)
        )
        .order_by(*RUN_ORDER)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [str(task_id) for task_id in conn.execute(query).scalars()]


def _dependency_status(conn: Connection, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = conn.execute(sa.select(T.c.id, T.c.status).where(T.c.id.in_(sorted(ids))))
    return {str(r.id): r.status for r in rows}


def claim_tasks(
    engine: Engine,
    *,
    limit: int,
    batch_size: int,
    now: datetime | None = None,
    scan_limit: int | None = None,
    task_types: Collection[str] | None = None,
    exclude_task_types: Collection[str] | None = None,
    holder: str | None = None,
) -> ClaimResult:
    """Claim up to `limit` runnable tasks in run order and cut them into batches.

    Tasks that cannot run are settled on the way: a failed, cancelled or missing dependency
    makes a task `blocked`; an unknown type or a missing approval makes it `waiting_approval`;
    a task that has used all its attempts becomes `failed`; each with an `error_message` saying
    why, listed in `settled` so that the claimer shows them on `task_runs`. Tasks whose
    dependencies are still open stay pending and are filtered out in SQL, so they never fill the
    candidate window. Claimed tasks become `in_progress` with
    `assigned_worker` naming their batch; the attempt is counted later, when a run starts the
    task (`ownership.start_task`). `task_types` / `exclude_task_types` restrict the claim to
    (or away from) task types, compared case-insensitively. `holder` (a run's worker name)
    assigns the claimed tasks straight to that run instead of to their batch: a running run
    claiming its next batch (`jobs/task_feed.py`), never seen by the reaper as a batch without
    a run.
    """
    now = now or utcnow()
    result = ClaimResult()
    filters = _type_filter(task_types, exclude_task_types)
    with engine.begin() as conn:
        candidates = _candidates(conn, now, scan_limit or limit * 5, filters)
        result.scanned = len(candidates)
        dep_status = _dependency_status(conn, all_dependency_ids(candidates))
        ready: list[str] = []
        settled: list[dict[str, object]] = []
        for candidate in candidates:
            verdict = judge(candidate, dep_status)
            if verdict.readiness is Readiness.CLAIM:
                ready.append(candidate.id)
                continue
            result.outcomes[verdict.readiness.value] += 1
            if verdict.readiness in _NOT_CLAIMED_STATUS:
                result.settled.append(
                    Settled(
                        candidate.id,
                        candidate.task_type or "",
                        _NOT_CLAIMED_STATUS[verdict.readiness],
                        verdict.reason,
                        candidate.attempt_count or 0,
                    )
                )
                settled.append(
                    {
                        "task_id": candidate.id,
                        "new_status": _NOT_CLAIMED_STATUS[verdict.readiness].value,
                        "reason": verdict.reason,
                    }
                )
        if settled:
            conn.execute(
                T.update()
                .where(T.c.id == sa.bindparam("task_id"), T.c.status == TaskStatus.PENDING.value)
                .values(
                    status=sa.bindparam("new_status"),
                    error_message=sa.bindparam("reason"),
                    updated_at=now,
                    # Its `task_runs` event is owed: whoever claimed reports it, else the sensor.
                    event_pending=True,
                ),
                settled,
            )
            _mark_exhausted_failed(conn, settled, now)
        claimable = _lock_ready(conn, ready, limit)
        if claimable:
            result.outcomes["claimed"] = len(claimable)
        for start in range(0, len(claimable), batch_size):
            batch = Batch(uuid.uuid4().hex[:16], tuple(claimable[start : start + batch_size]))
            conn.execute(
                T.update()
                .where(T.c.id.in_(batch.task_ids))
                .values(
                    status=TaskStatus.IN_PROGRESS.value,
                    assigned_worker=holder or batch_worker(batch.key),
                    assigned_at=now,
                    updated_at=now,
                )
            )
            result.batches.append(batch)
    return result


def _mark_exhausted_failed(
    conn: Connection, settled: list[dict[str, object]], now: datetime
) -> None:
    failed = [s["task_id"] for s in settled if s["new_status"] == TaskStatus.FAILED.value]
    if failed:
        conn.execute(
            T.update()
            .where(T.c.id.in_(failed), T.c.status == TaskStatus.FAILED.value)
            .values(failure_reason=T.c.error_message, completed_at=now)
        )

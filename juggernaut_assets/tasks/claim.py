"""Claiming pending tasks atomically, in priority order, in batches for executor runs.

The `status` column is the queue: whatever is `pending` and due is a candidate, whatever id it
has and whenever it was committed. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so two
claimers never take the same row; SQLite claims inside one `BEGIN IMMEDIATE` transaction (one
writer). A partial index on pending rows keeps a claim cheap however much history there is.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from juggernaut_assets.db.enums import PRIORITY_ORDER, TaskStatus
from juggernaut_assets.db.models import GovernanceTask, utcnow
from juggernaut_assets.tasks.rules import Candidate, Readiness, all_dependency_ids, judge

BATCH_WORKER_PREFIX = "dagster-batch:"
RUN_WORKER_PREFIX = "dagster-run:"

T = GovernanceTask.__table__


def batch_worker(batch_key: str) -> str:
    return f"{BATCH_WORKER_PREFIX}{batch_key}"


def run_worker(run_id: str) -> str:
    return f"{RUN_WORKER_PREFIX}{run_id}"


@dataclass(frozen=True)
class Batch:
    key: str
    task_ids: tuple[str, ...]


@dataclass
class ClaimResult:
    batches: list[Batch] = field(default_factory=list)
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
}


def _candidates(conn: Connection, now: datetime, scan_limit: int) -> list[Candidate]:
    query = (
        sa.select(
            T.c.id,
            T.c.task_type,
            T.c.depends_on,
            T.c.requires_approval,
            T.c.approved_at,
            T.c.approval_reason,
        )
        .where(T.c.status == TaskStatus.PENDING.value)
        .where(sa.or_(T.c.next_retry_at.is_(None), T.c.next_retry_at <= now))
        .order_by(*RUN_ORDER)
        .limit(scan_limit)
    )
    return [Candidate(**row._mapping) for row in conn.execute(query)]


def _lock_ready(conn: Connection, ready: list[str], limit: int) -> list[str]:
    """Lock up to `limit` of the ready tasks that are still pending and not locked by another
    claimer (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite already holds its single writer lock).
    """
    if not ready:
        return []
    query = (
        sa.select(T.c.id)
        .where(T.c.id.in_(ready), T.c.status == TaskStatus.PENDING.value)
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
) -> ClaimResult:
    """Claim up to `limit` runnable tasks in run order and cut them into batches.

    Tasks that cannot run are settled on the way: a failed, cancelled or missing dependency
    makes a task `blocked`; an unknown type or a missing approval makes it `waiting_approval`;
    each with an `error_message` saying why. Tasks whose dependencies are still open stay
    pending. Claimed tasks become `in_progress`, `attempt_count + 1`, with `assigned_worker`
    naming their batch (the executor run replaces it with its run id when it starts).
    """
    now = now or utcnow()
    result = ClaimResult()
    with engine.begin() as conn:
        candidates = _candidates(conn, now, scan_limit or limit * 5)
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
                ),
                settled,
            )
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
                    assigned_worker=batch_worker(batch.key),
                    assigned_at=now,
                    attempt_count=sa.func.coalesce(T.c.attempt_count, 0) + 1,
                    updated_at=now,
                )
            )
            result.batches.append(batch)
    return result

"""Recording an attempt's outcome: artifacts, the task's next state, the evidence.

One transaction per chunk of outcomes (`record_outcomes`), and for each outcome only if the
worker still holds the task (the held rows are locked first, every UPDATE repeats the check on
status and `assigned_worker`), so a released or re-claimed task is never overwritten.

The outcome's `task_runs` event is written to Dagster after this transaction. So that a crash
in between cannot lose it, the transaction also sets `event_pending`; the run clears it once
the events are written (`mark_events_reported`), and `new_tasks_sensor` reports, from the
database, every outcome still pending after its run ended (`unreported_outcomes`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import ArtifactKind, TaskStatus, VerificationStatus
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact, new_id, utcnow
from juggernaut_assets.execution.outcome import Artifact, Ending, TaskOutcome
from juggernaut_assets.tasks.claim import Settled
from juggernaut_assets.tasks.settle import release_for_retry

T = GovernanceTask.__table__


def evidence(outcome: TaskOutcome) -> str:
    """The readable `completion_evidence`: the summary and one line per verified artifact."""
    lines = [outcome.message]
    for a in outcome.artifacts:
        ref = a.uri or a.external_id or ""
        extra = f" sha256={a.sha256[:12]}…" if a.sha256 else ""
        rows = a.details.get("row_count")
        extra += f" rows={rows}" if rows is not None else ""
        lines.append(f"- {a.kind}: {ref}{extra} ({a.verification_detail or 'unverified'})")
    return "\n".join(lines)


_FINAL_STATUS = {
    Ending.FAILED: TaskStatus.FAILED,
    Ending.BLOCKED: TaskStatus.BLOCKED,
    Ending.WAITING_APPROVAL: TaskStatus.WAITING_APPROVAL,
}


def record_outcome(engine: Engine, outcome: TaskOutcome, worker: str) -> bool:
    """Write the outcome in one transaction, if `worker` still holds the task.

    Returns False (and writes nothing) when the task was released or taken meanwhile.
    """
    record_outcomes(engine, [outcome], worker)
    return outcome.recorded


def record_outcomes(
    engine: Engine,
    outcomes: list[TaskOutcome],
    worker: str,
    reported: Iterable[str] = (),
) -> None:
    """Write a chunk of outcomes in one transaction; sets each outcome's `recorded`.

    The fencing check comes first: the rows `worker` still holds (in progress, assigned to it)
    are locked, and only their outcomes are written; the others are left untouched and marked
    not recorded. Final outcomes are UPDATEs grouped by the columns they set (one executemany
    each), the artifacts one INSERT. `reported`: tasks whose earlier events are now written,
    cleared of `event_pending` in the same transaction (it saves one per chunk).
    """
    now = utcnow()
    with engine.begin() as conn:
        _clear_event_pending(conn, list(reported))
        if not outcomes:
            return
        held = {
            str(task_id)
            for task_id in conn.execute(
                sa.select(T.c.id)
                .where(
                    T.c.id.in_([o.task_id for o in outcomes]),
                    T.c.status == TaskStatus.IN_PROGRESS.value,
                    T.c.assigned_worker == worker,
                )
                .with_for_update()
            ).scalars()
        }
        written = [o for o in outcomes if o.task_id in held]
        for outcome in outcomes:
            outcome.recorded = outcome.task_id in held
        finals = [o for o in written if o.ending is not Ending.RETRY]
        _update_final(conn, finals, worker, now)
        _insert_artifacts(conn, written, now)
        for outcome in written:
            if outcome.ending is Ending.RETRY:
                _release(conn, outcome, worker, now)


def _update_final(
    conn: sa.Connection, outcomes: list[TaskOutcome], worker: str, now: datetime
) -> None:
    """One executemany UPDATE per set of columns (completed, failed, blocked/waiting)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for outcome in outcomes:
        values = _final_values(outcome, now) | {"event_pending": True}
        groups.setdefault(tuple(sorted(values)), []).append(
            {"task_id": outcome.task_id, **{f"v_{k}": v for k, v in values.items()}}
        )
    for columns, rows in groups.items():
        conn.execute(
            T.update()
            .where(
                T.c.id == sa.bindparam("task_id"),
                T.c.status == TaskStatus.IN_PROGRESS.value,
                T.c.assigned_worker == worker,
            )
            .values({c: sa.bindparam(f"v_{c}", type_=T.c[c].type) for c in columns}),
            rows,
        )


def _release(conn: sa.Connection, outcome: TaskOutcome, worker: str, now: datetime) -> None:
    """A retry: back to the queue (or failed, attempts used up), rejected if it had artifacts."""
    released = release_for_retry(conn, [outcome.task_id], outcome.message, worker=worker, now=now)
    outcome.next_status = released[0].status if released else None
    rejected = {"verification_status": VerificationStatus.REJECTED.value}
    conn.execute(
        T.update()
        .where(T.c.id == outcome.task_id)
        .values(event_pending=True, **(rejected if outcome.artifacts else {}))
    )


def settle_waiting_task(
    engine: Engine,
    outcome: TaskOutcome,
    worker: str,
    from_statuses: Iterable[str],
    values: dict[str, Any] | None = None,
) -> bool:
    """Move a task that waits outside a run (e.g. on its pull request) to the outcome's state.

    A compare-and-set on the task's status: False (nothing written) when it is no longer in
    one of `from_statuses`, so a transition seen twice is applied once. `worker` (the run that
    settles it) becomes `assigned_worker`, so the sensor's reconciliation of lost events waits
    for that run to end. `values` replaces the columns derived from the outcome.
    """
    now = utcnow()
    changes = values if values is not None else _final_values(outcome, now)
    changes = {**changes, "event_pending": True, "assigned_worker": worker, "updated_at": now}
    with engine.begin() as conn:
        moved = conn.execute(
            T.update()
            .where(T.c.id == outcome.task_id, T.c.status.in_(list(from_statuses)))
            .values(**changes)
        ).rowcount
        if not moved:
            return False
        _insert_artifacts(conn, [outcome], now)
    outcome.recorded = True
    return True


def _final_values(outcome: TaskOutcome, now: datetime) -> dict[str, Any]:
    if outcome.ending in (Ending.COMPLETED, Ending.AWAITING):
        completed = outcome.ending is Ending.COMPLETED
        return {
            "status": (outcome.next_status or TaskStatus.COMPLETED).value,
            "result": {
                "summary": outcome.message,
                "artifacts": [
                    {"kind": a.kind.value, "uri": a.uri, "external_id": a.external_id}
                    for a in outcome.artifacts
                ],
            },
            "completion_evidence": evidence(outcome),
            "verification_status": VerificationStatus.VERIFIED.value,
            "verified_at": now,
            "completed_at": now if completed else None,
            "error_message": None,
            "failure_reason": None,
            "next_retry_at": None,
            "updated_at": now,
        }
    status = _FINAL_STATUS[outcome.ending]
    outcome.next_status = status
    values: dict[str, Any] = {
        "status": status.value,
        "error_message": outcome.message,
        "updated_at": now,
    }
    if status is TaskStatus.FAILED:
        values |= {"failure_reason": outcome.message, "completed_at": now}
    return values


def _insert_artifacts(conn: sa.Connection, outcomes: list[TaskOutcome], now: datetime) -> None:
    rows = [
        {
            "id": new_id(),
            "task_id": outcome.task_id,
            "kind": a.kind.value,
            "uri": a.uri,
            "external_id": a.external_id,
            "sha256": a.sha256,
            "verified": a.verified,
            "verified_at": now if a.verified else None,
            "details": {**a.details, "verification": a.verification_detail},
            "created_at": now,
            "attempt": outcome.attempt,
        }
        for outcome in outcomes
        for a in outcome.artifacts
    ]
    if rows:
        conn.execute(TaskArtifact.__table__.insert(), rows)


def mark_events_reported(engine: Engine, task_ids: Iterable[str]) -> None:
    """The `task_runs` events of these tasks' last outcomes are written: clear `event_pending`."""
    ids = list(task_ids)
    if ids:
        with engine.begin() as conn:
            _clear_event_pending(conn, ids)


def _clear_event_pending(conn: sa.Connection, ids: list[str]) -> None:
    for start in range(0, len(ids), 500):
        conn.execute(
            T.update()
            .where(T.c.id.in_(ids[start : start + 500]), T.c.event_pending.is_(True))
            .values(event_pending=None)
        )


_ENDING_OF_STATUS = {
    TaskStatus.COMPLETED.value: Ending.COMPLETED,
    TaskStatus.AWAITING_PR_MERGE.value: Ending.AWAITING,
    TaskStatus.FAILED.value: Ending.FAILED,
    TaskStatus.BLOCKED.value: Ending.BLOCKED,
    TaskStatus.WAITING_APPROVAL.value: Ending.WAITING_APPROVAL,
    TaskStatus.PENDING.value: Ending.RETRY,
}


_ENDING_OF_SETTLED = {
    TaskStatus.BLOCKED: Ending.BLOCKED,
    TaskStatus.WAITING_APPROVAL: Ending.WAITING_APPROVAL,
    TaskStatus.FAILED: Ending.FAILED,
}


def settled_outcomes(settled: Iterable[Settled]) -> list[TaskOutcome]:
    """The outcomes of tasks a claim settled without running them, for their events."""
    return [
        TaskOutcome(
            s.task_id,
            s.task_type,
            _ENDING_OF_SETTLED[s.status],
            s.reason,
            s.attempt,
            next_status=s.status,
            recorded=True,
        )
        for s in settled
    ]


def unreported_outcomes(
    engine: Engine, is_gone: Callable[[str | None, datetime | None], bool], limit: int = 500
) -> list[TaskOutcome]:
    """Recorded outcomes whose `task_runs` event was never written, rebuilt from the database.

    `is_gone(assigned_worker, updated_at)` says whether the worker that recorded the outcome
    has ended (a live run still writes its own events). Artifacts are those of the recorded
    attempt.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                T.c.id,
                T.c.task_type,
                T.c.status,
                T.c.attempt_count,
                T.c.assigned_worker,
                T.c.updated_at,
                T.c.error_message,
                sa.cast(T.c.result, sa.Text).label("result"),
            )
            .where(T.c.event_pending.is_(True), T.c.status != TaskStatus.IN_PROGRESS.value)
            .order_by(T.c.updated_at)
            .limit(limit)
        ).all()
        rows = [
            r
            for r in rows
            if r.status in _ENDING_OF_STATUS and is_gone(r.assigned_worker, r.updated_at)
        ]
        artifacts = _artifacts_by_task(conn, {str(r.id): r.attempt_count for r in rows})
    outcomes = []
    for r in rows:
        ending = _ENDING_OF_STATUS[r.status]
        message = r.error_message or ""
        if ending in (Ending.COMPLETED, Ending.AWAITING):
            message = _summary(r.result) or message
        outcome = TaskOutcome(
            str(r.id),
            r.task_type or "",
            ending,
            message,
            r.attempt_count or 0,
            artifacts.get(str(r.id), []),
            next_status=TaskStatus(r.status),
            recorded=True,
        )
        outcomes.append(outcome)
    return outcomes


def _summary(result_text: str | None) -> str:
    try:
        result = json.loads(result_text or "null")
    except json.JSONDecodeError:
        return ""
    return str(result.get("summary", "")) if isinstance(result, dict) else ""


def _artifacts_by_task(
    conn: sa.Connection, attempts: dict[str, int | None]
) -> dict[str, list[Artifact]]:
    if not attempts:
        return {}
    A = TaskArtifact.__table__
    rows = conn.execute(
        sa.select(
            A.c.task_id,
            A.c.kind,
            A.c.uri,
            A.c.external_id,
            A.c.sha256,
            A.c.verified,
            A.c.attempt,
            sa.cast(A.c.details, sa.Text).label("details"),
        )
        .where(A.c.task_id.in_(list(attempts)))
        .order_by(A.c.created_at)
    ).all()
    found: dict[str, list[Artifact]] = {}
    for a in rows:
        task_id = str(a.task_id)
        if a.attempt is not None and a.attempt != attempts[task_id]:
            continue
        try:
            details = json.loads(a.details or "{}")
        except json.JSONDecodeError:
            details = {}
        details = details if isinstance(details, dict) else {}
        found.setdefault(task_id, []).append(
            Artifact(
                kind=ArtifactKind(a.kind)
                if a.kind in ArtifactKind.__members__.values()
                else a.kind,
                uri=a.uri,
                external_id=a.external_id,
                sha256=a.sha256,
                details=details,
                verified=bool(a.verified),
                verification_detail=str(details.get("verification", "")),
            )
        )
    return found

"""Recording an attempt's outcome: artifacts, the task's next state, the evidence.

One transaction per task, and only if the worker still holds the task (compare-and-set on
status and `assigned_worker`), so a released or re-claimed task is never overwritten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import TaskStatus, VerificationStatus
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact, new_id, utcnow
from juggernaut_assets.execution.outcome import Ending, TaskOutcome
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
    now = utcnow()
    with engine.begin() as conn:
        held = conn.execute(
            sa.select(T.c.id)
            .where(
                T.c.id == outcome.task_id,
                T.c.status == TaskStatus.IN_PROGRESS.value,
                T.c.assigned_worker == worker,
            )
            .with_for_update()
        ).scalar_one_or_none()
        if held is None:
            return False
        _insert_artifacts(conn, outcome, now)
        if outcome.ending is Ending.RETRY:
            released = release_for_retry(
                conn, [outcome.task_id], outcome.message, worker=worker, now=now
            )
            outcome.next_status = released[0].status if released else None
            if outcome.artifacts:
                conn.execute(
                    T.update()
                    .where(T.c.id == outcome.task_id)
                    .values(verification_status=VerificationStatus.REJECTED.value)
                )
            return True
        conn.execute(
            T.update().where(T.c.id == outcome.task_id).values(**_final_values(outcome, now))
        )
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


def _insert_artifacts(conn: sa.Connection, outcome: TaskOutcome, now: datetime) -> None:
    if not outcome.artifacts:
        return
    conn.execute(
        TaskArtifact.__table__.insert(),
        [
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
            }
            for a in outcome.artifacts
        ],
    )

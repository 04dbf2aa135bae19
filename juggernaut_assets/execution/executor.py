"""Carrying out a batch of claimed tasks: resolve, run, verify, record.

No artifact, no completion: a task becomes `completed` only when its handler returned at
least one artifact and every artifact passed verification. Every other ending is recorded with
an `error_message` a person understands, and one task's ending never stops the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import TaskStatus, VerificationStatus
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact, new_id, utcnow
from juggernaut_assets.execution.context import Materializer, TaskContext
from juggernaut_assets.execution.handlers import HANDLERS
from juggernaut_assets.execution.outcome import (
    Artifact,
    NeedsApproval,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.execution.registry import canonical_task_type
from juggernaut_assets.execution.tools.toolbox import ToolBox
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.claim import RUN_ORDER, batch_worker, run_worker
from juggernaut_assets.tasks.lease import Heartbeat
from juggernaut_assets.tasks.payloads import PayloadError
from juggernaut_assets.tasks.settle import release_for_retry

T = GovernanceTask.__table__
log = logging.getLogger(__name__)


class Ending(StrEnum):
    """How an attempt ended; decides the task's next state."""

    COMPLETED = "completed"
    AWAITING = "awaiting"
    FAILED = "failed"
    BLOCKED = "blocked"
    WAITING_APPROVAL = "waiting_approval"
    RETRY = "retry"


@dataclass
class TaskOutcome:
    task_id: str
    task_type: str
    ending: Ending
    message: str
    attempt: int
    artifacts: list[Artifact] = field(default_factory=list)
    next_status: TaskStatus | None = None
    duration_s: float = 0.0
    recorded: bool = False


@dataclass
class ExecutionEnv:
    """Everything the executor needs; built once per run."""

    engine: Engine
    tools: TaskToolsResource
    github: GitHubResource
    artifacts_root: Path
    http: httpx.Client
    instance: dg.DagsterInstance | None = None
    materialize: Materializer | None = None
    log: Any = log


@dataclass(frozen=True)
class ClaimedTask:
    id: str
    task_type: str
    payload: Any
    attempt_count: int


def take_batch(engine: Engine, batch_key: str, run_id: str) -> list[ClaimedTask]:
    """Move the batch's tasks from the batch to this run; returns the tasks it now holds.

    Only tasks still `in_progress` under the batch's name are taken, so a task released by the
    reaper (or taken by another run of the same batch) is never executed here.
    """
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            T.update()
            .where(
                T.c.assigned_worker == batch_worker(batch_key),
                T.c.status == TaskStatus.IN_PROGRESS.value,
            )
            .values(assigned_worker=run_worker(run_id), started_at=now, updated_at=now)
        )
        rows = conn.execute(
            sa.select(T.c.id, T.c.task_type, T.c.payload, T.c.attempt_count)
            .where(
                T.c.assigned_worker == run_worker(run_id),
                T.c.status == TaskStatus.IN_PROGRESS.value,
            )
            .order_by(*RUN_ORDER)
        ).all()
    return [ClaimedTask(str(r.id), r.task_type, r.payload, r.attempt_count or 0) for r in rows]


def execute_task(task: ClaimedTask, env: ExecutionEnv) -> TaskOutcome:
    """Run one task through its handler and verify what it produced. Writes only tool_calls."""
    clock = time.perf_counter()
    outcome = _execute(task, env)
    outcome.duration_s = time.perf_counter() - clock
    return outcome


def _execute(task: ClaimedTask, env: ExecutionEnv) -> TaskOutcome:
    def ending(kind: Ending, message: str, artifacts: list[Artifact] | None = None) -> TaskOutcome:
        return TaskOutcome(
            task.id, task.task_type, kind, message, task.attempt_count, artifacts or []
        )

    handler_name = canonical_task_type(task.task_type)
    if handler_name is None:
        return ending(Ending.WAITING_APPROVAL, f"no handler for task type '{task.task_type}'")
    task_dir = env.artifacts_root / task.id / f"attempt-{task.attempt_count}"
    ctx = TaskContext(
        task_id=task.id,
        task_type=task.task_type,
        payload=task.payload,
        engine=env.engine,
        artifacts_dir=task_dir,
        tools=ToolBox(env.engine, task.id, env.tools, task_dir, env.http),
        github=env.github,
        materialize=env.materialize,
        log=env.log,
    )
    try:
        result = HANDLERS[handler_name](ctx)
    except (PayloadError, TaskRejected) as exc:
        return ending(Ending.FAILED, str(exc))
    except TaskBlocked as exc:
        return ending(Ending.BLOCKED, str(exc))
    except NeedsApproval as exc:
        return ending(Ending.WAITING_APPROVAL, str(exc))
    except RetriableError as exc:
        return ending(Ending.RETRY, str(exc))
    except Exception as exc:
        env.log.exception("task %s (%s) raised", task.id, task.task_type)
        return ending(Ending.RETRY, f"{type(exc).__name__}: {exc}")
    problems = verify_artifacts(result.artifacts, VerifyEnv(env.engine, env.instance, env.github))
    if problems:
        return ending(
            Ending.RETRY,
            "not completed, verification failed: " + "; ".join(problems),
            result.artifacts,
        )
    outcome = ending(
        Ending.COMPLETED if result.status is TaskStatus.COMPLETED else Ending.AWAITING,
        result.summary,
        result.artifacts,
    )
    outcome.next_status = result.status
    return outcome


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


def _carry_out(
    env: ExecutionEnv, tasks: list[ClaimedTask], worker: str, pending: set[str]
) -> Iterator[TaskOutcome]:
    for task in tasks:
        outcome = execute_task(task, env)
        outcome.recorded = record_outcome(env.engine, outcome, worker)
        pending.discard(task.id)
        if not outcome.recorded:
            env.log.warning("task %s was released while running; outcome discarded", task.id)
        yield outcome


def run_batch(
    env: ExecutionEnv,
    batch_key: str,
    run_id: str,
) -> Iterator[TaskOutcome]:
    """Take the batch, carry out each task, record each outcome, yield it.

    While it works, a heartbeat keeps the lease of its tasks fresh. If the run stops half-way
    (an exception escapes), the tasks it still holds are released for retry before the
    exception propagates; a killed process stops heartbeating and the sensor's reaper
    releases its tasks.
    """
    worker = run_worker(run_id)
    tasks = take_batch(env.engine, batch_key, run_id)
    pending = {t.id for t in tasks}
    try:
        with Heartbeat(env.engine, worker):
            yield from _carry_out(env, tasks, worker, pending)
    finally:
        if pending:
            with env.engine.begin() as conn:
                release_for_retry(
                    conn, pending, f"run {run_id} stopped before the task ran", worker=worker
                )

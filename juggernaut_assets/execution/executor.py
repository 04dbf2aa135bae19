"""Carrying out a batch of claimed tasks: resolve, run, verify, record.

No artifact, no completion: a task becomes `completed` only when its handler returned at
least one artifact and every artifact passed verification. Every other ending is recorded with
an `error_message` a person understands, and one task's ending never stops the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.db.models import GovernanceTask, utcnow
from juggernaut_assets.execution.context import Materializer, TaskContext
from juggernaut_assets.execution.handlers import HANDLERS
from juggernaut_assets.execution.outcome import (
    Artifact,
    Ending,
    NeedsApproval,
    RetriableError,
    TaskBlocked,
    TaskOutcome,
    TaskRejected,
)
from juggernaut_assets.execution.record import record_outcome
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

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
from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.execution.context import TaskContext
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
from juggernaut_assets.execution.verify import verify_artifacts
from juggernaut_assets.execution.verify_domains import RegistrarVerifyEnv
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.llm import LlmResource
from juggernaut_assets.resources.registrar import Registrar
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.claim import run_worker
from juggernaut_assets.tasks.lease import Heartbeat
from juggernaut_assets.tasks.ownership import LeaseLost, TakenTask, start_task, take_batch
from juggernaut_assets.tasks.payloads import PayloadError
from juggernaut_assets.tasks.settle import release_for_retry

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
    log: Any = log
    llm: LlmResource | None = None
    registrar: Registrar | None = None


@dataclass(frozen=True)
class ClaimedTask:
    id: str
    task_type: str
    payload: Any
    attempt_count: int


def execute_task(task: ClaimedTask, env: ExecutionEnv, worker: str | None = None) -> TaskOutcome:
    """Run one task through its handler and verify what it produced. Writes only tool_calls.

    With `worker`, every side effect first re-checks that this worker still holds the task.
    """
    clock = time.perf_counter()
    outcome = _execute(task, env, worker)
    outcome.duration_s = time.perf_counter() - clock
    return outcome


def _execute(task: ClaimedTask, env: ExecutionEnv, worker: str | None) -> TaskOutcome:
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
        tools=ToolBox(env.engine, task.id, env.tools, task_dir, env.http, worker=worker),
        github=env.github,
        log=env.log,
        llm=env.llm,
        registrar=env.registrar,
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
    except LeaseLost as exc:
        return ending(Ending.RETRY, f"stopped: {exc}")
    except Exception as exc:
        env.log.exception("task %s (%s) raised", task.id, task.task_type)
        return ending(Ending.RETRY, f"{type(exc).__name__}: {exc}")
    verify_env = RegistrarVerifyEnv(env.engine, env.instance, env.github, registrar=env.registrar)
    problems = verify_artifacts(result.artifacts, verify_env)
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


def _carry_out(env: ExecutionEnv, task: TakenTask, worker: str) -> TaskOutcome | None:
    """Start, execute and record one task; None when the run no longer holds it."""
    try:
        attempt = start_task(env.engine, task.id, worker)
    except LeaseLost as exc:
        env.log.warning("task %s skipped: %s", task.id, exc)
        return None
    outcome = execute_task(ClaimedTask(task.id, task.task_type, task.payload, attempt), env, worker)
    outcome.recorded = record_outcome(env.engine, outcome, worker)
    if not outcome.recorded:
        env.log.warning("task %s was released while running; outcome discarded", task.id)
    return outcome


def run_batch(
    env: ExecutionEnv,
    batch_key: str,
    run_id: str,
) -> Iterator[TaskOutcome]:
    """Take the batch, then start, carry out and record each task; yield each outcome.

    While it works, a heartbeat keeps the lease of its tasks fresh. If the heartbeat cannot
    renew the lease for `FENCE_MISSES` intervals, the run stops before starting another task
    (the reaper will give them to another run). If the run stops half-way (an exception
    escapes), the tasks it has not started are released before the exception propagates,
    without using an attempt; a killed process stops heartbeating and the sensor's reaper
    releases its tasks.
    """
    worker = run_worker(run_id)
    tasks = take_batch(env.engine, batch_key, run_id)
    pending = {t.id for t in tasks}
    try:
        with Heartbeat(env.engine, worker) as heartbeat:
            for task in tasks:
                if heartbeat.lost:
                    raise LeaseLost(f"run {run_id} could not renew its lease; stopping")
                outcome = _carry_out(env, task, worker)
                pending.discard(task.id)
                if outcome is not None:
                    yield outcome
    finally:
        if pending:
            with env.engine.begin() as conn:
                release_for_retry(conn, pending, f"run {run_id} stopped mid-batch", worker=worker)

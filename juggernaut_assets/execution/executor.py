"""Carrying out a batch of claimed tasks: resolve, run, verify, record.

No artifact, no completion: a task becomes `completed` only when its handler returned at
least one artifact and every artifact passed verification. Every other ending is recorded with
an `error_message` a person understands, and one task's ending never stops the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from sqlalchemy.engine import Engine
from upath import UPath

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
from juggernaut_assets.execution.phases import ChunkSizer, PhaseClock
from juggernaut_assets.execution.record import record_outcomes
from juggernaut_assets.execution.registry import canonical_task_type
from juggernaut_assets.execution.tools.toolbox import ToolBox
from juggernaut_assets.execution.verify import verify_artifacts
from juggernaut_assets.execution.verify_domains import RegistrarVerifyEnv
from juggernaut_assets.lib.artifact_store import artifact_path
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.llm import LlmResource
from juggernaut_assets.resources.registrar import Registrar
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.claim import run_worker
from juggernaut_assets.tasks.lease import Heartbeat
from juggernaut_assets.tasks.ownership import (
    LeaseLost,
    TakenTask,
    start_tasks,
    take_batch,
    unstart_tasks,
)
from juggernaut_assets.tasks.payloads import PayloadError
from juggernaut_assets.tasks.settle import release_for_retry

log = logging.getLogger(__name__)


@dataclass
class ExecutionEnv:
    """Everything the executor needs; built once per run."""

    engine: Engine
    tools: TaskToolsResource
    github: GitHubResource
    artifacts_root: Path | UPath
    """A local directory or an object store URL's path (`lib/artifact_store.py`)."""
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


def execute_task(
    task: ClaimedTask,
    env: ExecutionEnv,
    worker: str | None = None,
    clock: PhaseClock | None = None,
) -> TaskOutcome:
    """Run one task through its handler and verify what it produced. Writes only tool_calls.

    With `worker`, every side effect first re-checks that this worker still holds the task.
    `clock` adds the time to its `handler` and `verification` phases.
    """
    began = time.perf_counter()
    outcome = _execute(task, env, worker, clock or PhaseClock())
    outcome.duration_s = time.perf_counter() - began
    return outcome


def _execute(
    task: ClaimedTask, env: ExecutionEnv, worker: str | None, clock: PhaseClock
) -> TaskOutcome:
    def ending(kind: Ending, message: str, artifacts: list[Artifact] | None = None) -> TaskOutcome:
        return TaskOutcome(
            task.id, task.task_type, kind, message, task.attempt_count, artifacts or []
        )

    handler_name = canonical_task_type(task.task_type)
    if handler_name is None:
        return ending(Ending.WAITING_APPROVAL, f"no handler for task type '{task.task_type}'")
    task_dir = artifact_path(env.artifacts_root) / task.id / f"attempt-{task.attempt_count}"
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
        with clock.phase("handler"):
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
    with clock.phase("verification"):
        verify_env = RegistrarVerifyEnv(
            env.engine, env.instance, env.github, registrar=env.registrar
        )
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


MoreWork = Callable[[], str | None]
"""Claims another batch for the running run: its batch key, or None when there is no work."""


def run_batch(env: ExecutionEnv, batch_key: str, run_id: str) -> Iterator[TaskOutcome]:
    """Carry out one batch; yield each recorded or discarded outcome (see `run_batches`)."""
    for chunk in run_batches(env, batch_key, run_id):
        yield from chunk


def run_batches(
    env: ExecutionEnv,
    batch_key: str,
    run_id: str,
    more_work: MoreWork | None = None,
    clock: PhaseClock | None = None,
) -> Iterator[list[TaskOutcome]]:
    """Take the batch, then start, carry out and record its tasks; yield each recorded chunk.

    When the batch is done, `more_work` may hand the run another batch (a run keeps working
    while there is work, so its start-up is paid once, not per batch). Tasks are started and
    recorded in chunks (`ChunkSizer`): one transaction starts a chunk, one records its
    outcomes, and a chunk's outcomes are written at least every `ChunkSizer.target_s`.

    While it works, a heartbeat keeps the lease of its tasks fresh. If the heartbeat cannot
    renew the lease for `FENCE_MISSES` intervals, the run stops before running another task
    (the reaper will give them to another run). If the run stops half-way (an exception
    escapes, or the caller stops iterating), the outcomes it has are recorded, and the tasks it
    had not begun are released without using an attempt; a killed process stops heartbeating
    and the sensor's reaper releases its tasks.
    """
    worker = run_worker(run_id)
    clock = clock or PhaseClock()
    sizer = ChunkSizer()
    with Heartbeat(env.engine, worker) as heartbeat:
        key: str | None = batch_key
        while key is not None:
            with clock.phase("take"):
                tasks = take_batch(env.engine, key, run_id)
            yield from _carry_out(env, tasks, run_id, heartbeat, sizer, clock)
            key = more_work() if more_work is not None else None


def _carry_out(
    env: ExecutionEnv,
    tasks: list[TakenTask],
    run_id: str,
    heartbeat: Heartbeat,
    sizer: ChunkSizer,
    clock: PhaseClock,
) -> Iterator[list[TaskOutcome]]:
    worker = run_worker(run_id)
    waiting = list(tasks)
    started: list[ClaimedTask] = []
    done: list[TaskOutcome] = []
    in_flight: str | None = None
    since = time.monotonic()
    try:
        while waiting or started:
            if heartbeat.lost:
                raise LeaseLost(f"run {run_id} could not renew its lease; stopping")
            if not started:
                size = sizer.size()
                chunk, waiting = waiting[:size], waiting[size:]
                started = _start(env, chunk, worker, clock)
                continue
            in_flight = started[0].id
            outcome = execute_task(started.pop(0), env, worker, clock)
            in_flight = None
            sizer.observe(outcome.duration_s)
            done.append(outcome)
            if not started or time.monotonic() - since >= sizer.target_s:
                recorded, done = done, []
                _record(env, recorded, worker, clock)
                yield recorded
                since = time.monotonic()
    finally:
        if done:
            try:
                _record(env, done, worker, clock)
            except Exception:  # the error that stopped the run is the one to raise
                env.log.exception("outcomes of %s not recorded; the reaper retries them", worker)
        # The task whose handler was interrupted keeps its attempt; the others never began.
        unfinished = [t.id for t in started] + [t.id for t in waiting]
        if in_flight is not None:
            unfinished.append(in_flight)
        if unfinished:
            message = f"run {run_id} stopped mid-batch"
            with env.engine.begin() as conn:
                unstart_tasks(conn, [t.id for t in started], worker)
                release_for_retry(conn, unfinished, message, worker=worker)


def _start(
    env: ExecutionEnv, chunk: list[TakenTask], worker: str, clock: PhaseClock
) -> list[ClaimedTask]:
    with clock.phase("start"):
        attempts = start_tasks(env.engine, [t.id for t in chunk], worker)
    for task in chunk:
        if task.id not in attempts:
            env.log.warning("task %s skipped: no longer held by %s", task.id, worker)
    return [
        ClaimedTask(t.id, t.task_type, t.payload, attempts[t.id]) for t in chunk if t.id in attempts
    ]


def _record(env: ExecutionEnv, outcomes: list[TaskOutcome], worker: str, clock: PhaseClock) -> None:
    with clock.phase("recording"):
        record_outcomes(env.engine, outcomes, worker)
    for outcome in outcomes:
        if not outcome.recorded:
            env.log.warning(
                "task %s was released while running; outcome discarded", outcome.task_id
            )

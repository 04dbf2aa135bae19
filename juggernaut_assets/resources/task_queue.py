"""How the new-task sensor cuts the queue into executor runs."""

from __future__ import annotations

import dagster as dg
import pydantic


class TaskQueueResource(dg.ConfigurableResource):
    """Queue settings for `new_tasks_sensor`.

    - `batch_size`: tasks per `execute_tasks` run. One run per task costs ~3–5 s of process
      start-up (shared/dagster-notes.md), so tasks travel in batches.
    - `max_tasks_per_tick`: tasks claimed per sensor evaluation (`batch_size` × runs).
    - `partition_retention`: how many task partitions `task_runs` keeps (the oldest are
      removed); the Dagster UI slows down past a few tens of thousands.
    - `run_max_runtime_seconds`: run monitoring cancels an executor run older than this, and its
      tasks go back to the queue. A run stops taking new batches after half of it.
    - `max_executor_runs`: executor runs working at once. A run that finishes its batch claims
      the next one itself, so the sensor launches a run only for a free slot and a busy queue
      pays the run start-up (seconds) once per run, not once per batch.
    - `claim_more`: whether a run claims further batches when its own is done (off: one
      batch per run, the sensor launches every run).
    - `run_idle_seconds`: how long a run that found no work waits for some (polling every
      `poll_seconds`) before it ends; 0 ends it at once.
    """

    batch_size: int = pydantic.Field(default=100, ge=1, le=5_000)
    max_tasks_per_tick: int = pydantic.Field(default=1_000, ge=1, le=50_000)
    partition_retention: int = pydantic.Field(default=20_000, ge=100, le=100_000)
    run_max_runtime_seconds: int = pydantic.Field(default=3_600, ge=60)
    max_executor_runs: int = pydantic.Field(default=2, ge=1, le=200)
    claim_more: bool = True
    run_idle_seconds: float = pydantic.Field(default=5.0, ge=0, le=3_600)
    poll_seconds: float = pydantic.Field(default=0.25, gt=0, le=60)

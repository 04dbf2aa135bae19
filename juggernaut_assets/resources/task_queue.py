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
      tasks go back to the queue.
    """

    batch_size: int = pydantic.Field(default=100, ge=1, le=5_000)
    max_tasks_per_tick: int = pydantic.Field(default=1_000, ge=1, le=50_000)
    partition_retention: int = pydantic.Field(default=20_000, ge=100, le=100_000)
    run_max_runtime_seconds: int = pydantic.Field(default=3_600, ge=60)

"""More work for a running executor run: the next batch, claimed by the run itself.

A run starts with the batch the sensor claimed for it. When that batch is done, the run claims
the next one (same order, rules and locks as the sensor: `tasks.claim.claim_tasks`), held by
the run from the start, and adds its tasks as `task_runs` partitions: its start-up is paid
once for many batches. It stops taking batches once half of its maximum runtime has passed,
and when no work has come for `run_idle_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dagster as dg
from sqlalchemy.engine import Engine

from juggernaut_assets.assets.task_runs import TASK_PARTITIONS
from juggernaut_assets.execution.outcome import TaskOutcome
from juggernaut_assets.execution.phases import PhaseClock
from juggernaut_assets.execution.record import settled_outcomes
from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.tasks.claim import claim_tasks

LAUNCHED_ELSEWHERE = frozenset({HandlerName.SCAN.value})
"""Task types executor runs leave to their own sensor (scans run as asset runs)."""


class TaskFeed:
    """Callable handing a run its next batch key, or None when the run should end."""

    def __init__(
        self,
        engine: Engine,
        instance: dg.DagsterInstance,
        queue: TaskQueueResource,
        clock: PhaseClock,
        worker: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.instance = instance
        self.queue = queue
        self.clock = clock
        self.worker = worker
        self.sleep = sleep
        self.began = time.monotonic()
        self.batches = 0
        self.settled: list[TaskOutcome] = []
        """Tasks the run's claims settled without running them; the run reports their events."""

    def _time_left(self) -> bool:
        return time.monotonic() - self.began < self.queue.run_max_runtime_seconds / 2

    def __call__(self) -> str | None:
        idle_until = time.monotonic() + self.queue.run_idle_seconds
        while self.queue.claim_more and self._time_left():
            with self.clock.phase("claim"):
                claim = claim_tasks(
                    self.engine,
                    limit=self.queue.batch_size,
                    batch_size=self.queue.batch_size,
                    exclude_task_types=LAUNCHED_ELSEWHERE,
                    holder=self.worker,
                )
                if claim.settled:
                    self.settled += settled_outcomes(claim.settled)
                    self.instance.add_dynamic_partitions(
                        TASK_PARTITIONS.name or "", [s.task_id for s in claim.settled]
                    )
                if claim.batches:
                    [batch] = claim.batches
                    self.instance.add_dynamic_partitions(
                        TASK_PARTITIONS.name or "", list(batch.task_ids)
                    )
                    self.batches += 1
                    return batch.key
            if time.monotonic() >= idle_until:
                return None
            with self.clock.phase("idle"):
                self.sleep(self.queue.poll_seconds)
        return None

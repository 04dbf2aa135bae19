"""Heartbeats: a running executor keeps its tasks' lease fresh.

The run worker touches `updated_at` of the tasks it holds every `interval` seconds from a
background thread. A run whose process was killed stops heartbeating; once its tasks' lease is
older than `LEASE_MISSES` intervals, the sensor's reaper gives them back to the queue, without
waiting for the run's maximum runtime. A run whose own beats keep failing knows its lease is
going stale: after `FENCE_MISSES` intervals without a successful beat it is `lost`, and the
executor stops before starting anything more (see `ownership.py`).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.db.models import GovernanceTask, utcnow

T = GovernanceTask.__table__
LEASE_MISSES = 4
FENCE_MISSES = 2


def heartbeat_interval() -> float:
    return float(os.environ.get("JUGGERNAUT_HEARTBEAT_SECONDS", "30"))


def lease_duration() -> timedelta:
    return timedelta(seconds=heartbeat_interval() * LEASE_MISSES)


def touch(engine: Engine, worker: str) -> int:
    """Renew the lease of every in-progress task `worker` holds."""
    with engine.begin() as conn:
        return conn.execute(
            T.update()
            .where(T.c.assigned_worker == worker, T.c.status == TaskStatus.IN_PROGRESS.value)
            .values(updated_at=utcnow())
        ).rowcount


class Heartbeat:
    """Context manager running `touch` every `interval` seconds in a daemon thread."""

    def __init__(self, engine: Engine, worker: str, interval: float | None = None) -> None:
        self.engine = engine
        self.worker = worker
        self.interval = interval or heartbeat_interval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="task-heartbeat")
        self._last_beat = time.monotonic()

    @property
    def lost(self) -> bool:
        """True once beats have failed for `FENCE_MISSES` intervals: stop starting work."""
        return time.monotonic() - self._last_beat > self.interval * FENCE_MISSES

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                touch(self.engine, self.worker)
            except Exception:  # a missed beat is retried; the lease allows several
                continue
            self._last_beat = time.monotonic()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

"""Where a run's time goes: wall time added up per phase of the executor's work.

The phases are those of `benchmarks/task_throughput.py`: claim, take, start, handler,
verification, recording, events (the Dagster event writes) and idle (waiting for work). A
run reports its totals as output metadata, so the breakdown of a real daemon run can be read
back from the instance.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator

PHASES = ("claim", "take", "start", "handler", "verification", "recording", "events", "idle")


class PhaseClock:
    """Adds up wall time per phase (`with clock.phase("recording"): ...`)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - began

    def totals(self) -> dict[str, float]:
        """Seconds per phase, every known phase included (rounded to the millisecond)."""
        return {name: round(self.seconds.get(name, 0.0), 3) for name in PHASES}


class ChunkSizer:
    """How many tasks to start (and later record) together.

    Starting and recording a task are one database transaction each; for tasks that take a
    millisecond, those transactions are most of the work. Tasks are therefore started and
    recorded in chunks sized so that a chunk's outcomes wait at most about `target_s` before
    they are written: many for fast tasks, one at a time for slow ones (model calls, HTTP), so
    a slow task's outcome is never held back by others. The first chunk has one task.
    """

    def __init__(self, target_s: float = 0.2, largest: int = 50, smoothing: float = 0.3) -> None:
        self.target_s = target_s
        self.largest = largest
        self.smoothing = smoothing
        self.mean_s: float | None = None

    def observe(self, duration_s: float) -> None:
        """Fold one task's duration into the running mean."""
        if self.mean_s is None:
            self.mean_s = duration_s
        else:
            self.mean_s += self.smoothing * (duration_s - self.mean_s)

    def size(self) -> int:
        if self.mean_s is None:
            return 1
        return max(1, min(self.largest, int(self.target_s / max(self.mean_s, 1e-4))))

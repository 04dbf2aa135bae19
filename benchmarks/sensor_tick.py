"""A sensor tick does not get slower as history grows.

Measures one `new_tasks_sensor` evaluation (reap + claim 1,000 pending tasks into batches +
partition requests) on PostgreSQL with 10,000 and with 1,000,000 finished tasks in
`governance_tasks`. Target: ≤ 2 s at 1,000,000 rows.

    .venv/bin/python benchmarks/sensor_tick.py
"""

from __future__ import annotations

import statistics
import time

import dagster as dg
import sqlalchemy as sa

from benchmarks._pg import temporary_database
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.sensors.new_tasks import new_tasks_sensor

PENDING = 1_000
REPEATS = 3

HISTORY = """
INSERT INTO governance_tasks (id, task_type, title, payload, priority, status, attempt_count,
    max_attempts, depends_on, created_at, completed_at, assigned_worker, verification_status)
SELECT gen_random_uuid(), 'analysis', 'history', '{"sql": "SELECT 1"}',
    (ARRAY['critical','high','medium','normal','low','background'])[1 + g % 6]::task_priority,
    (ARRAY['completed','failed','cancelled'])[1 + g % 3], 1, 3, '[]',
    now() - make_interval(secs => g), now() - make_interval(secs => g),
    'dagster-run:old', 'verified'
FROM generate_series(1, :n) AS g
"""
PENDING_SQL = """
INSERT INTO governance_tasks (id, task_type, title, payload, priority, status, attempt_count,
    max_attempts, depends_on, created_at)
SELECT gen_random_uuid(), 'analysis', 'new', '{"sql": "SELECT 1"}',
    (ARRAY['critical','high','medium','normal','low','background'])[1 + g % 6]::task_priority,
    'pending', 0, 3, '[]', now() - make_interval(secs => g)
FROM generate_series(1, :n) AS g
"""


def _tick(url: str) -> float:
    resources = {
        "governance_db": GovernanceDB(url=url),
        "task_queue": TaskQueueResource(
            batch_size=100, max_tasks_per_tick=PENDING, max_executor_runs=PENDING // 100
        ),
    }
    timings = []
    for _ in range(REPEATS):
        with make_engine(url).begin() as conn:
            conn.execute(sa.text("DELETE FROM governance_tasks WHERE title = 'new'"))
            conn.execute(sa.text(PENDING_SQL), {"n": PENDING})
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(instance=instance, resources=resources)
            start = time.perf_counter()
            result = new_tasks_sensor(context)
            timings.append(time.perf_counter() - start)
        claimed = sum(int(r.tags["juggernaut/task_count"]) for r in result.run_requests)
        assert claimed == PENDING, claimed
    return statistics.median(timings)


def main() -> None:
    with temporary_database("ja_bench_sensor") as url:
        upgrade(url)
        figures = {}
        for history in (10_000, 1_000_000):
            with make_engine(url).begin() as conn:
                have = conn.execute(sa.text("SELECT COUNT(*) FROM governance_tasks")).scalar()
                conn.execute(sa.text(HISTORY), {"n": history - have})
                conn.execute(sa.text("ANALYZE governance_tasks"))
            figures[history] = _tick(url)
            print(
                f"{history:>9,} finished + {PENDING:,} pending: one tick (claim {PENDING:,} into "
                f"{PENDING // 100} runs) = {figures[history]:.3f} s (median of {REPEATS})"
            )
        make_engine(url).dispose()
    ratio = figures[1_000_000] / figures[10_000]
    print(f"1,000,000 vs 10,000 rows: {ratio:.2f}x the time (target: tick <= 2 s at 1M rows)")


if __name__ == "__main__":
    main()

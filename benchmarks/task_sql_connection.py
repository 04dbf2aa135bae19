"""What it costs per task that no session state survives task SQL, two ways.

`pooled + DISCARD ALL`: the task-SQL pool `read_only_connection` uses (pre-ping at checkout,
`DISCARD ALL` at return). `NullPool`: a fresh connection (a new server backend) per task, the
same read-only transaction. Each task runs `SELECT 1` as the reader role on a throwaway
PostgreSQL database; prints the median milliseconds per task and the ratio.

    .venv/bin/python -m benchmarks.task_sql_connection
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from benchmarks._pg import temporary_database
from juggernaut_assets.db.engine import make_engine, read_only_connection
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.readonly_role import READER_ROLE

TASKS = 300


def _per_task_ms(run: Callable[[], None]) -> float:
    samples = []
    for _ in range(TASKS):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    with temporary_database("ja_bench_sqlconn") as url:
        upgrade(url)
        engine = make_engine(url)
        fresh = sa.create_engine(url, poolclass=NullPool)

        def pooled() -> None:
            with read_only_connection(engine) as conn:
                conn.exec_driver_sql("SELECT 1").scalar_one()

        def unpooled() -> None:
            with fresh.connect() as conn:
                conn.exec_driver_sql(
                    f"SET TRANSACTION READ ONLY; SET LOCAL ROLE {READER_ROLE};"
                    " SET LOCAL statement_timeout = 30000"
                )
                conn.exec_driver_sql("SELECT 1").scalar_one()

        pooled_ms = _per_task_ms(pooled)
        unpooled_ms = _per_task_ms(unpooled)
        fresh.dispose()
        engine.dispose()
    print(f"pooled + DISCARD ALL: {pooled_ms:.2f} ms/task")
    print(f"NullPool (new connection): {unpooled_ms:.2f} ms/task")
    print(f"NullPool / pooled: {unpooled_ms / pooled_ms:.1f}x")


if __name__ == "__main__":
    main()

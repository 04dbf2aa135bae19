"""1,000 `analysis` tasks from insert to verified `completed`, through the real daemon.

Dagster storage and the governance database are both PostgreSQL (throwaway databases on the
local server). The batched platform is measured against the naive way, one run per task,
in the same script and on the same machine. Target: 1,000 tasks in ≤ 60 s (≥ 50× one run
per task; shared/dagster-notes.md measured ~13 runs/minute for that).

    .venv/bin/python -m benchmarks.task_throughput [--tasks 1000] [--batch-size 250]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from benchmarks._pg import temporary_database
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.models import GovernanceTask
from juggernaut_assets.tasks.create import add_task

PROJECT = Path(__file__).resolve().parent.parent
TERMINAL = ("completed", "failed", "blocked", "waiting_approval", "cancelled")


@contextlib.contextmanager
def running_daemon(governance_url: str, storage_url: str, batch_size: int) -> Iterator[None]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": storage_url,
            "JUGGERNAUT_DATABASE_URL": governance_url,
            "JUGGERNAUT_DATA_DIR": str(Path(tmp) / "data"),
            "JUGGERNAUT_SENSOR_INTERVAL_SECONDS": "2",
            "JUGGERNAUT_BATCH_SIZE": str(batch_size),
            "JUGGERNAUT_MAX_TASKS_PER_TICK": "5000",
        }
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "daemon.log", "w"),  # noqa: SIM115
            start_new_session=True,
        )
        try:
            yield
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=30)
            # The daemon's code server can outlive a SIGTERM while it is busy: end the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)


def insert_tasks(url: str, n: int, tag: str) -> list[str]:
    with sa.orm.Session(make_engine(url)) as session, session.begin():
        return [
            add_task(session, "analysis", {"sql": f"SELECT {i} AS n, '{tag}' AS tag"}, title=tag)[
                0
            ].id
            for i in range(n)
        ]


def wait_done(url: str, tag: str, n: int, timeout: float) -> dict[str, int]:
    t = GovernanceTask.__table__
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with make_engine(url).connect() as conn:
            counts = dict(
                conn.execute(
                    sa.select(t.c.status, sa.func.count())
                    .where(t.c.title == tag)
                    .group_by(t.c.status)
                ).all()
            )
        if sum(counts.get(s, 0) for s in TERMINAL) == n:
            return counts
        time.sleep(0.2)
    raise TimeoutError(f"{tag}: {counts}")


def measure(n: int, batch_size: int, timeout: float) -> float:
    with (
        temporary_database("ja_bench_gov") as gov,
        temporary_database("ja_bench_dagster") as storage,
    ):
        upgrade(gov)
        with running_daemon(gov, storage, batch_size):
            insert_tasks(gov, 1, "warmup")
            wait_done(gov, "warmup", 1, timeout=180)
            insert_tasks(gov, n, "measured")
            start = time.perf_counter()
            counts = wait_done(gov, "measured", n, timeout)
            elapsed = time.perf_counter() - start
        with make_engine(gov).connect() as conn:
            verified = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM governance_tasks t "
                    "JOIN task_artifacts a ON a.task_id = t.id WHERE t.title = 'measured' "
                    "AND t.verification_status = 'verified' AND a.verified"
                )
            ).scalar()
        make_engine(gov).dispose()
    assert counts == {"completed": n} and verified == n, (counts, verified)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--naive-tasks", type=int, default=20)
    args = parser.parse_args()

    naive = measure(args.naive_tasks, batch_size=1, timeout=900)
    naive_rate = args.naive_tasks / naive
    print(
        f"naive (one run per task): {args.naive_tasks} tasks in {naive:.1f} s = "
        f"{naive_rate:.2f} tasks/s ({naive_rate * 60:.0f} runs/min)"
    )
    batched = measure(args.tasks, batch_size=args.batch_size, timeout=600)
    rate = args.tasks / batched
    print(
        f"batched ({args.batch_size} tasks per run): {args.tasks} tasks insert -> verified "
        f"completed in {batched:.1f} s = {rate:.1f} tasks/s"
    )
    print(f"ratio: {rate / naive_rate:.0f}x one-run-per-task (target: <= 60 s, >= 50x)")


if __name__ == "__main__":
    main()

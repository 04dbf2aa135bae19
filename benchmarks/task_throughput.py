"""Tasks from insert to verified `completed`, through the real daemon, and where the time goes.

Dagster storage and the governance database are throwaway databases on the local PostgreSQL
server (or SQLite files with `--sqlite`). Each measurement starts a `dagster-daemon`, runs one
warm-up task (the code location loads, the first run starts), inserts the measured
`analysis` tasks and waits until every one is `completed` with verified artifacts.

- **cold**: the warm-up run has ended, so the measured tasks wait for a sensor tick and a new
  run's start-up: what a queue that was idle sees.
- **warm**: tasks arrive while a run is still live (within `run_idle_seconds`): the steady
  state of a busy queue.
- **one run per task**: the naive way (batch size 1, runs do not claim more), in the same
  script, for the ratio.

The breakdown per phase is read from the runs' own output metadata (`phases_s`, see
`execution/phases.py`); "run start-up" is, per run, the time from its creation to its step's
start. "Our overhead per task" is the runs' busy time minus the handlers' own time, per task.

    .venv/bin/python -m benchmarks.task_throughput [--tasks 1000] [--large 10000]
        [--batch-size 250] [--runs 2] [--sqlite] [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from benchmarks._daemon import running_daemon
from benchmarks._pg import temporary_database
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.models import GovernanceTask
from juggernaut_assets.execution.phases import PHASES
from juggernaut_assets.tasks.create import add_task

PROJECT = Path(__file__).resolve().parent.parent
TERMINAL = ("completed", "failed", "blocked", "waiting_approval", "cancelled")


@dataclass
class Setup:
    """One platform configuration under test."""

    batch_size: int = 250
    max_runs: int = 2
    claim_more: bool = True
    idle_s: float = 5.0
    sqlite: bool = False
    workers: int = 0


@dataclass
class Measured:
    tasks: int
    seconds: float
    runs: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    startup_s: float = 0.0
    first_run_after_s: float | None = None
    """From the insert to the creation of the first new run (the sensor's tick)."""

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def overhead_ms(self) -> float:
        busy = sum(v for k, v in self.phases.items() if k not in ("handler", "idle"))
        return busy / self.tasks * 1000


@contextlib.contextmanager
def platform(setup: Setup) -> Iterator[tuple[str, Path]]:
    """Throwaway governance database and Dagster storage; yields (governance URL, home)."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        env = {"JUGGERNAUT_DATA_DIR": str(Path(tmp) / "data")}
        if setup.sqlite:
            governance = f"sqlite:///{tmp}/governance.db"
            shutil.copy(PROJECT / "deploy" / "dagster.sqlite.yaml", home / "dagster.yaml")
        else:
            governance = stack.enter_context(temporary_database("ja_bench_gov"))
            env["DAGSTER_PG_URL"] = stack.enter_context(temporary_database("ja_bench_dagster"))
            config = "dagster.celery.yaml" if setup.workers else "dagster.postgres.yaml"
            shutil.copy(PROJECT / "deploy" / config, home / "dagster.yaml")
        upgrade(governance)
        env |= {
            "DAGSTER_HOME": str(home),
            "JUGGERNAUT_DATABASE_URL": governance,
            "JUGGERNAUT_SENSOR_INTERVAL_SECONDS": "2",
            "JUGGERNAUT_BATCH_SIZE": str(setup.batch_size),
            "JUGGERNAUT_MAX_TASKS_PER_TICK": "50000",
            "JUGGERNAUT_MAX_EXECUTOR_RUNS": str(setup.max_runs),
            "JUGGERNAUT_RUNS_CLAIM_MORE": str(setup.claim_more).lower(),
            "JUGGERNAUT_RUN_IDLE_SECONDS": str(setup.idle_s),
        }
        if setup.workers:
            from benchmarks._workers import celery_workers

            redis_url = os.environ.get("JUGGERNAUT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
            env |= {
                "JUGGERNAUT_EXECUTOR": "celery",
                "JUGGERNAUT_CELERY_BROKER_URL": redis_url,
                "JUGGERNAUT_CELERY_BACKEND_URL": redis_url,
                "JUGGERNAUT_CELERY_QUEUE": f"juggernaut-bench-{uuid.uuid4().hex[:8]}",
            }
            stack.enter_context(celery_workers(setup.workers, {**os.environ, **env}))
        stack.enter_context(running_daemon({**os.environ, **env}, Path(tmp) / "daemon.log"))
        os.environ.update(env)
        yield governance, home


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
    counts: dict[str, int] = {}
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
        time.sleep(0.05)
    raise TimeoutError(f"{tag}: {counts}")


def verified_count(url: str, tag: str) -> int:
    with make_engine(url).connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT COUNT(DISTINCT t.id) FROM governance_tasks t "
                "JOIN task_artifacts a ON a.task_id = t.id WHERE t.title = :tag "
                "AND t.verification_status = 'verified' AND a.verified"
            ),
            {"tag": tag},
        ).scalar_one()


def wait_runs_ended(instance: dg.DagsterInstance, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    live = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    while instance.get_runs_count(dg.RunsFilter(statuses=live)) and time.monotonic() < deadline:
        time.sleep(0.2)


def run_figures(
    instance: dg.DagsterInstance, since: float
) -> tuple[int, Counter[str], float, float | None]:
    """(runs, phase totals, start-up seconds of the runs created after `since`, seconds from
    `since` to the first of them) of the executor runs that ended after `since`."""
    phases: Counter[str] = Counter()
    startup = 0.0
    created = []
    records = [
        r
        for r in instance.get_run_records(dg.RunsFilter(job_name="execute_tasks"))
        if (r.end_time or 0) >= since
    ]
    for record in records:
        run_id = record.dagster_run.run_id
        born = record.create_timestamp.timestamp()
        if born >= since:
            created.append(born - since)
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type_value == "STEP_START" and born >= since:
                startup += entry.timestamp - born
            if event.event_type_value == "STEP_OUTPUT":
                value = event.event_specific_data.metadata.get("phases_s")
                phases.update(value.value if value is not None else {})
    return len(records), phases, startup, min(created, default=None)


def measure(n: int, setup: Setup, *, warm: bool, timeout: float = 900) -> Measured:
    with platform(setup) as (governance, _home):
        instance = dg.DagsterInstance.get()
        insert_tasks(governance, 1, "warmup")
        wait_done(governance, "warmup", 1, timeout=180)
        if not warm:
            wait_runs_ended(instance)
        since = time.time()
        insert_tasks(governance, n, "measured")
        start = time.perf_counter()
        counts = wait_done(governance, "measured", n, timeout)
        elapsed = time.perf_counter() - start
        verified = verified_count(governance, "measured")
        assert counts == {"completed": n} and verified == n, (counts, verified)
        wait_runs_ended(instance)
        runs, phases, startup, first = run_figures(instance, since)
        instance.dispose()
        make_engine(governance).dispose()
    return Measured(n, elapsed, runs, phases, startup, first)


def _line(label: str, m: Measured) -> str:
    return (
        f"{label}: {m.tasks} tasks insert -> verified completed in {m.seconds:.1f} s = "
        f"{m.rate:.1f} tasks/s ({m.runs} run(s))"
    )


def _breakdown(m: Measured) -> str:
    parts = [f"{k} {m.phases.get(k, 0.0) / m.tasks * 1000:.2f}" for k in PHASES if k != "idle"]
    tick = "" if m.first_run_after_s is None else f"first new run {m.first_run_after_s:.1f} s "
    return (
        "  per task, ms: "
        + ", ".join(parts)
        + f"\n  {tick}after the insert; start-up of new runs {m.startup_s:.1f} s in all; "
        + f"our overhead {m.overhead_ms:.2f} ms/task"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10_000, help="0 skips the large run")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--runs", type=int, default=1, help="executor runs at once")
    parser.add_argument(
        "--naive-tasks", type=int, default=20, help="0 skips one-run-per-task (and the ratios)"
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite storage and database")
    parser.add_argument("--workers", type=int, default=0, help="Celery workers (0: in-process)")
    args = parser.parse_args()
    setup = Setup(batch_size=args.batch_size, max_runs=args.runs, sqlite=args.sqlite)

    naive = None
    if args.naive_tasks:
        one_per_run = Setup(
            batch_size=1, max_runs=10, claim_more=False, idle_s=0, sqlite=args.sqlite
        )
        naive = measure(args.naive_tasks, one_per_run, warm=False)
        print(_line("one run per task", naive))
    cold = measure(args.tasks, setup, warm=False)
    print(_line("cold (new run)", cold))
    print(_breakdown(cold))
    warm = measure(args.tasks, setup, warm=True)
    print(_line("warm (live run)", warm))
    print(_breakdown(warm))
    if naive:
        print(
            f"ratio: cold {cold.rate / naive.rate:.0f}x, warm {warm.rate / naive.rate:.0f}x "
            "one run per task"
        )
    if args.large:
        large = measure(args.large, setup, warm=False, timeout=1800)
        print(_line("large, cold", large))
        print(_breakdown(large))
        print(
            f"overhead per task: {cold.overhead_ms:.2f} ms at {args.tasks}, "
            f"{large.overhead_ms:.2f} ms at {args.large} "
            f"({large.overhead_ms / cold.overhead_ms:.2f}x)"
        )
    if args.workers:
        for workers in sorted({1, args.workers}):
            celery = Setup(**{**setup.__dict__, "workers": workers, "max_runs": workers})
            spread = measure(args.tasks, celery, warm=False)
            print(_line(f"{workers} Celery worker(s), cold", spread))
            print(_breakdown(spread))
    print("targets: 1,000 tasks <= 10 s; 10,000 tasks <= 60 s")


if __name__ == "__main__":
    main()

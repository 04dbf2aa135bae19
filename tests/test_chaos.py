"""Kill the run workers and the daemon while a few hundred tasks are in flight (issue 8).

The real `dagster-daemon` on PostgreSQL storage carries read-only queries and workflow calls to
a local server that counts what it is charged per task. While they run, this test SIGKILLs a
run worker mid-batch, a run worker that has started but not yet taken its batch (held at the
take by a row lock, so the moment is certain), and the daemon itself, twice. Then every task
must reach a terminal state with: nothing lost, nothing completed without its verified
artifact, no artifact doubled, no attempt beyond `max_attempts`, and no two runs executing the
same task at once. The counts are printed with the test session's summary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.jobs.execute_tasks import BATCH_TAG
from juggernaut_assets.tasks.claim import BATCH_WORKER_PREFIX
from juggernaut_assets.tasks.create import add_task
from tests.conftest import CHAOS_REPORT, PG_SERVER_URL
from tests.fakes.charge_server import ChargeServer

PROJECT = Path(__file__).resolve().parent.parent
QUERIES, CHARGES, MAX_ATTEMPTS = 200, 100, 5

pytestmark = pytest.mark.e2e


@pytest.fixture
def storage_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the Dagster instance's storage."""
    name = f"ja_chaos_dagster_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Platform:
    """The daemon (and whatever it starts) under a DAGSTER_HOME, killable at will."""

    def __init__(self, home: Path, env: dict[str, str], log: Path) -> None:
        self.home, self.env, self.log = home, env, log
        self.groups: list[int] = []
        self.daemon: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=PROJECT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("a"),
            start_new_session=True,
        )
        self.groups.append(self.daemon.pid)

    def kill_daemon(self) -> None:
        """SIGKILL the daemon process alone: its runs go on, its sensor tick is cut short."""
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait()

    def stop(self) -> None:
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


def _run_pid(platform: Platform, run_id: str) -> int | None:
    """The run worker's pid, from the process-start event the run logs."""
    with platform.instance() as instance:
        records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    for record in records:
        metadata = record.dagster_event.engine_event_data.metadata or {}
        if "pid" in metadata:
            return int(metadata["pid"].value)
    return None


def _statuses(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, COUNT(*) FROM governance_tasks GROUP BY 1"))
        return Counter({status: count for status, count in rows})


def _wait(condition, timeout: float, what: str, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def _kill_a_running_worker(platform: Platform, engine: sa.Engine, killed: set[str]) -> str:
    """SIGKILL the worker of a live run that is in the middle of a task (a workflow if any)."""

    def working_run() -> str | None:
        with engine.connect() as conn:
            workers = conn.execute(
                sa.text(
                    "SELECT assigned_worker FROM governance_tasks WHERE status = 'in_progress' "
                    "AND assigned_worker LIKE 'dagster-run:%' AND started_at >= assigned_at "
                    "ORDER BY task_type = 'workflow' DESC"
                )
            ).scalars()
            runs = [w.removeprefix("dagster-run:") for w in workers]
        return next((r for r in runs if r not in killed), None)

    run_id = _wait(working_run, 120, "a working run", step=0.01)
    pid = _wait(lambda: _run_pid(platform, run_id), 30, "the run's pid")
    os.kill(pid, signal.SIGKILL)
    killed.add(run_id)
    return run_id


def _kill_a_worker_before_it_takes_its_batch(platform: Platform, engine: sa.Engine) -> str:
    """Hold a claimed batch's rows locked, let its run start and block on the take, kill it."""

    def claimed_batch() -> str | None:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT assigned_worker FROM governance_tasks WHERE status = 'in_progress' "
                    f"AND assigned_worker LIKE '{BATCH_WORKER_PREFIX}%' LIMIT 1"
                )
            ).scalar()

    with engine.connect() as holder, holder.begin():
        worker = _wait(claimed_batch, 120, "a claimed batch", step=0.01)
        locked = holder.execute(
            sa.text(
                "SELECT id FROM governance_tasks WHERE assigned_worker = :w "
                "AND status = 'in_progress' FOR UPDATE"
            ),
            {"w": worker},
        ).all()
        assert locked, "the batch was taken before it could be held"
        key = worker.removeprefix(BATCH_WORKER_PREFIX)
        seen: dict[str, object] = {"key": key}

        def blocked_run() -> str | None:
            with platform.instance() as instance:
                runs = instance.get_runs(dg.RunsFilter(tags={BATCH_TAG: key}))
                seen["runs"] = [(r.run_id, r.status.value) for r in instance.get_runs(limit=5)]
            started = [r for r in runs if r.status == dg.DagsterRunStatus.STARTED]
            if not started:
                return None
            with engine.connect() as conn:
                waiting = conn.execute(
                    sa.text(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock' "
                        "AND query LIKE 'UPDATE governance_tasks%'"
                    )
                ).scalar()
            return started[0].run_id if waiting else None

        run_id = _wait(blocked_run, 120, f"the batch's run to block on its take ({seen})")
        os.kill(_wait(lambda: _run_pid(platform, run_id), 30, "the run's pid"), signal.SIGKILL)
        time.sleep(0.5)
    return run_id


def _add_tasks(engine: sa.Engine, charge_url: str) -> list[str]:
    with sa.orm.Session(engine) as session, session.begin():
        ids = [
            add_task(
                session,
                "analysis",
                {"sql": f"SELECT {n} AS n, repeat('x', 64) AS pad"},
                max_attempts=MAX_ATTEMPTS,
            )[0].id
            for n in range(QUERIES)
        ]
        for _ in range(CHARGES):
            task, _ = add_task(session, "workflow", {"steps": []}, max_attempts=MAX_ATTEMPTS)
            task.payload = {
                "steps": [
                    {"tool": "http", "args": {"method": "POST", "url": f"{charge_url}/{task.id}"}}
                ]
            }
            ids.append(task.id)
    return ids


def _report(engine: sa.Engine, server: ChargeServer, kills: dict[str, object]) -> dict[str, int]:
    with engine.connect() as conn:
        one = conn.execute(
            sa.text(
                """
                SELECT
                  COUNT(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled',
                                   'blocked', 'waiting_approval')) AS lost,
                  COUNT(*) FILTER (WHERE status = 'completed') AS completed,
                  COUNT(*) FILTER (WHERE status = 'failed') AS failed,
                  COUNT(*) FILTER (WHERE status = 'completed' AND (
                      verification_status IS DISTINCT FROM 'verified' OR NOT EXISTS (
                        SELECT 1 FROM task_artifacts a WHERE a.task_id = t.id
                        AND a.attempt = t.attempt_count AND a.verified)))
                    AS completed_without_verified_artifact,
                  COUNT(*) FILTER (WHERE attempt_count > max_attempts) AS beyond_max_attempts,
                  COALESCE(SUM(attempt_count), 0) AS attempts
                FROM governance_tasks t
                """
            )
        ).one()
        doubled = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM (SELECT task_id, attempt, kind FROM task_artifacts "
                "GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) d"
            )
        ).scalar()
    charges = server.by_task()
    figures = {
        **dict(one._mapping),
        "doubled_artifacts": doubled,
        "tasks_charged": len(charges),
        "charge_calls": sum(len(c) for c in charges.values()),
        "tasks_charged_more_than_once_per_key": sum(
            1 for c in charges.values() if len(c) > len({x.idempotency_key for x in c})
        ),
        "tasks_with_two_idempotency_keys": sum(
            1 for c in charges.values() if len({x.idempotency_key for x in c}) > 1
        ),
        "concurrent_executions": len(server.overlapping()),
    }
    lines = [f"{k}: {v}" for k, v in {**kills, **figures}.items()]
    CHAOS_REPORT.parent.mkdir(parents=True, exist_ok=True)
    CHAOS_REPORT.write_text("\n".join(["chaos test (issue 8)", *lines]) + "\n")
    print("\n".join(lines))
    return {k: int(v) for k, v in figures.items()}


def test_killing_workers_and_the_daemon_loses_nothing_and_runs_nothing_twice(
    pg_database_url, storage_url, tmp_path, monkeypatch
):
    from tests.conftest import _truncate_all

    _truncate_all(pg_database_url)
    engine = make_engine(pg_database_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", storage_url)
    with ChargeServer() as server:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": storage_url,
            "JUGGERNAUT_DATABASE_URL": pg_database_url,
            "JUGGERNAUT_DATA_DIR": str(tmp_path / "data"),
            "JUGGERNAUT_SENSOR_INTERVAL_SECONDS": "1",
            "JUGGERNAUT_HEARTBEAT_SECONDS": "3",
            "JUGGERNAUT_BATCH_SIZE": "50",
            "JUGGERNAUT_HTTP_ALLOWED_HOSTS": server.url.removeprefix("http://"),
        }
        subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), "instance", "migrate"],
            cwd=PROJECT,
            env=env,
            check=True,
            capture_output=True,
        )
        platform = Platform(home, env, tmp_path / "daemon.log")
        platform.start()
        try:
            ids = _add_tasks(engine, f"{server.url}/charge")
            kills: dict[str, object] = {"tasks": len(ids)}
            killed: set[str] = set()
            kills["killed_before_take"] = _kill_a_worker_before_it_takes_its_batch(platform, engine)
            killed.add(str(kills["killed_before_take"]))
            kills["killed_mid_batch"] = _kill_a_running_worker(platform, engine, killed)
            platform.kill_daemon()
            platform.start()
            kills["killed_mid_batch_2"] = _kill_a_running_worker(platform, engine, killed)
            time.sleep(1.5)
            platform.kill_daemon()
            platform.start()
            _wait(
                lambda: _statuses(engine)["completed"] + _statuses(engine)["failed"] == len(ids),
                300,
                "every task to finish",
                step=0.5,
            )
            with platform.instance() as instance:
                killed = instance.get_run_by_id(str(kills["killed_before_take"]))
                kills["run_killed_before_take_ended"] = killed.status.value
        finally:
            platform.stop()
        figures = _report(engine, server, kills)
    assert figures["lost"] == 0
    assert figures["completed_without_verified_artifact"] == 0
    assert figures["doubled_artifacts"] == 0
    assert figures["beyond_max_attempts"] == 0
    assert figures["concurrent_executions"] == 0
    assert figures["tasks_with_two_idempotency_keys"] == 0
    assert figures["completed"] == len(ids), figures
    assert kills["run_killed_before_take_ended"] == "FAILURE"

"""`execute_tasks` on two Celery workers: the real daemon, a Redis broker, PostgreSQL storage.

The daemon runs with `JUGGERNAUT_EXECUTOR=celery`; its runs hand their `execute_task_batch`
step to two workers started here as separate processes with the deployed `deploy/celery.yaml`
(`benchmarks/_workers.py`). Which worker carried a task is read from Dagster's own record:
the task's final holder is its run (`assigned_worker = dagster-run:<id>`), and dagster-celery
logs, in that run, the engine event "Executing steps … in celery worker" with the worker's
node name. Artifacts go to one bucket on a local S3 server (moto's), as they would for
machines: each worker writes there and verifies there, and the test re-hashes every object.

Skipped when Redis is unreachable, unless `CI=true` (then it fails).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import redis
import sqlalchemy as sa

from benchmarks._daemon import running_daemon
from benchmarks._pg import temporary_database
from benchmarks._workers import CeleryWorker, Command, celery_workers
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact
from juggernaut_assets.jobs.executors import BACKEND_ENV, BROKER_ENV, EXECUTOR_ENV, QUEUE_ENV
from juggernaut_assets.tasks.claim import RUN_WORKER_PREFIX
from juggernaut_assets.tasks.create import add_task
from tests.fakes.s3_server import Bucket, new_bucket, s3_server

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("JUGGERNAUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
"""A database number of its own on the local Redis, so nothing else's keys are touched."""
CELERY_WORKER_KEY = "Celery worker"
"""The metadata key dagster-celery gives the worker's node name (`dagster_celery/tasks.py`)."""
TASKS = 16
BATCH_SIZE = 4
HEARTBEAT_SECONDS = 2
# ~0.1-0.3 s of work per task (task SQL may not call pg_sleep), so a batch is still running
# when the test looks at it.
SLOW_SQL = (
    "SELECT count(*) + {n} AS n FROM generate_series(1, 5000) AS a, generate_series(1, 1000) AS b"
)
T = GovernanceTask.__table__
A = TaskArtifact.__table__

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _require_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        message = f"Redis is not reachable for the Celery broker: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()


def _forget_queue(queue: str) -> None:
    """Remove the test queue's keys from the broker (results expire on their own)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
    finally:
        client.close()


@dataclass
class Platform:
    env: dict[str, str]
    home: Path
    governance_url: str
    bucket: Bucket
    logs: Path

    def instance(self) -> dg.DagsterInstance:
        with _environ(self.env):
            return dg.DagsterInstance.from_config(str(self.home))


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """The platform's environment for this process (the instance's storage URL is an env ref)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def platform(pg_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The real daemon on PostgreSQL storage, sending `execute_tasks` steps to Celery."""
    _require_redis()
    tmp = tmp_path_factory.mktemp("celery")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "deploy" / "dagster.celery.yaml", home / "dagster.yaml")
    queue = f"juggernaut-test-{uuid.uuid4().hex[:8]}"
    with temporary_database("ja_test_celery_dagster") as storage_url, s3_server() as s3:
        bucket = new_bucket(s3)
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": storage_url,
            "JUGGERNAUT_DATABASE_URL": pg_database_url,
            "JUGGERNAUT_DATA_DIR": str(tmp / "shared"),
            EXECUTOR_ENV: "celery",
            BROKER_ENV: REDIS_URL,
            BACKEND_ENV: REDIS_URL,
            QUEUE_ENV: queue,
            "JUGGERNAUT_BATCH_SIZE": str(BATCH_SIZE),
            "JUGGERNAUT_MAX_EXECUTOR_RUNS": "2",
            "JUGGERNAUT_RUN_IDLE_SECONDS": "1",
            "JUGGERNAUT_SENSOR_INTERVAL_SECONDS": "1",
            "JUGGERNAUT_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            **bucket.env,
        }
        try:
            with running_daemon(env, tmp / "daemon.log"):
                yield Platform(env, home, pg_database_url, bucket, tmp)
        finally:
            _forget_queue(queue)


@pytest.fixture
def workers(platform: Platform) -> Iterator[list[CeleryWorker]]:
    """Two workers, one started each way an operator may start one (`benchmarks/_workers.py`)."""
    commands = (Command.DAGSTER_CELERY, Command.CELERY)
    with celery_workers(2, platform.env, log_dir=platform.logs, commands=commands) as started:
        yield started


def _insert(url: str, tag: str, n: int = TASKS) -> list[str]:
    with sa.orm.Session(make_engine(url)) as session, session.begin():
        return [
            add_task(session, "analysis", {"sql": SLOW_SQL.format(n=i)}, title=tag)[0].id
            for i in range(n)
        ]


def _tasks(url: str, ids: list[str]) -> dict[str, sa.Row]:
    with make_engine(url).connect() as conn:
        rows = conn.execute(sa.select(T).where(T.c.id.in_(ids))).all()
    return {str(r.id): r for r in rows}


def _wait_completed(url: str, ids: list[str], timeout: float) -> dict[str, sa.Row]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _tasks(url, ids)
        if all(r.status in {"completed", "failed"} for r in rows.values()):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(Counter(r.status for r in rows.values()))
        time.sleep(0.5)


def _celery_host(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The worker that ran the run's step, from dagster-celery's engine event."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = record.dagster_event.engine_event_data.metadata or {}
        if CELERY_WORKER_KEY in metadata:
            return str(metadata[CELERY_WORKER_KEY].value)
    return None


def _host_of_tasks(platform: Platform, rows: dict[str, sa.Row]) -> dict[str, str | None]:
    with platform.instance() as instance:
        hosts: dict[str, str | None] = {}
        for row in rows.values():
            run_id = (row.assigned_worker or "").removeprefix(RUN_WORKER_PREFIX)
            if run_id not in hosts:
                hosts[run_id] = _celery_host(instance, run_id)
    return {
        task_id: hosts[(row.assigned_worker or "").removeprefix(RUN_WORKER_PREFIX)]
        for task_id, row in rows.items()
    }


def _artifacts(url: str, ids: list[str]) -> dict[str, list[sa.Row]]:
    with make_engine(url).connect() as conn:
        rows = conn.execute(sa.select(A).where(A.c.task_id.in_(ids))).all()
    grouped: dict[str, list[sa.Row]] = {i: [] for i in ids}
    for row in rows:
        grouped[str(row.task_id)].append(row)
    return grouped


def _assert_completed_once(platform: Platform, rows: dict[str, sa.Row]) -> None:
    """Every task completed and verified, with the artifacts of exactly one attempt (its
    last), each file still matching its sha256, and exactly one `task_runs` event."""
    ids = list(rows)
    assert Counter(r.status for r in rows.values()) == {"completed": len(ids)}
    assert {r.verification_status for r in rows.values()} == {"verified"}
    for task_id, artifacts in _artifacts(platform.governance_url, ids).items():
        assert artifacts, f"task {task_id} has no artifact"
        assert {a.attempt for a in artifacts} == {rows[task_id].attempt_count}, task_id
        for artifact in artifacts:
            assert artifact.verified
            stored = platform.bucket.read(artifact.uri)
            assert hashlib.sha256(stored).hexdigest() == artifact.sha256
    with platform.instance() as instance:
        events = instance.fetch_materializations(dg.AssetKey("task_runs"), limit=10_000).records
    per_task = Counter(e.partition_key for e in events if e.partition_key in rows)
    assert per_task == dict.fromkeys(ids, 1)


def _run_worker_pids(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """The run worker's pid, from the process events Dagster logs for the run."""
    pids = set()
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = record.dagster_event.engine_event_data.metadata or {}
        if "pid" in metadata:
            pids.add(int(metadata["pid"].value))
    return sorted(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _attempts_run(platform: Platform, task_id: str) -> list[str]:
    """Attempts whose handler got as far as writing a result object in the shared bucket."""
    keys = platform.bucket.keys(prefix=f"artifacts/{task_id}/")
    return sorted({key.split("/")[2] for key in keys})


def test_batches_are_spread_over_both_workers(platform: Platform, workers: list[CeleryWorker]):
    ids = _insert(platform.governance_url, "spread")
    rows = _wait_completed(platform.governance_url, ids, timeout=120)
    _assert_completed_once(platform, rows)
    by_host = Counter(_host_of_tasks(platform, rows).values())
    assert set(by_host) == {w.hostname for w in workers}, by_host
    assert all(rows[i].attempt_count == 1 for i in ids)
    assert all(_attempts_run(platform, i) == ["attempt-1"] for i in ids)


def _wait_mid_batch(url: str, ids: list[str], timeout: float = 120) -> str:
    """A run that has completed some of its tasks and still holds others."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs: dict[str, Counter[str]] = {}
        for row in _tasks(url, ids).values():
            if (row.assigned_worker or "").startswith(RUN_WORKER_PREFIX):
                runs.setdefault(row.assigned_worker, Counter())[row.status] += 1
        for worker, states in runs.items():
            if states["completed"] and states["in_progress"]:
                return worker.removeprefix(RUN_WORKER_PREFIX)
        time.sleep(0.05)
    raise AssertionError("no run was seen mid-batch")


def test_killed_worker_loses_no_task_and_runs_none_twice(
    platform: Platform, workers: list[CeleryWorker]
):
    ids = _insert(platform.governance_url, "kill")
    run_id = _wait_mid_batch(platform.governance_url, ids)
    with platform.instance() as instance:
        host = _celery_host(instance, run_id)
    [victim] = [w for w in workers if w.hostname == host]
    [survivor] = [w for w in workers if w is not victim]
    victim.kill()
    at_kill = _tasks(platform.governance_url, ids)
    held = {
        i
        for i, r in at_kill.items()
        if r.status == "in_progress" and r.assigned_worker == f"{RUN_WORKER_PREFIX}{run_id}"
    }
    started_by_victim = {i for i in held if at_kill[i].attempt_count}
    assert held, "the killed worker held no task"

    rows = _wait_completed(platform.governance_url, ids, timeout=150)
    _assert_completed_once(platform, rows)
    hosts = _host_of_tasks(platform, rows)
    # What the killed worker held was finished elsewhere, by the worker still alive.
    assert {hosts[i] for i in held} == {survivor.hostname}
    assert all(rows[i].assigned_worker != f"{RUN_WORKER_PREFIX}{run_id}" for i in held)
    # Tasks it had not reached were run once; the one(s) it had started used an attempt.
    for task_id in ids:
        expected = 2 if task_id in started_by_victim else 1
        assert rows[task_id].attempt_count == expected, task_id
        runs = _attempts_run(platform, task_id)
        assert runs[-1] == f"attempt-{expected}"
        assert len(runs) <= expected
    # The killed step: acknowledged when it started, so Celery never delivers it again. The
    # sensor failed its run; the run worker, told to stop, revoked the step (the surviving
    # worker marks a revoked PENDING step REVOKED in the backend) and exited.
    with platform.instance() as instance:
        killed = instance.get_run_by_id(run_id)
        messages = [r.message for r in instance.all_logs(run_id) if r.dagster_event]
        pids = _run_worker_pids(instance, run_id)
    assert killed is not None and killed.status == dg.DagsterRunStatus.FAILURE
    assert any("stopped heartbeating" in m for m in messages), messages[-8:]
    assert any("was revoked" in m for m in messages), messages[-8:]
    assert pids and not [p for p in pids if _alive(p)]
    print(
        json.dumps(
            {
                "killed_run": run_id,
                "tasks_held_at_kill": len(held),
                "started_at_kill": len(started_by_victim),
                "handler_ran_twice": sum(len(_attempts_run(platform, i)) > 1 for i in ids),
            }
        )
    )

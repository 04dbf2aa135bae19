"""End to end: the real `dagster-daemon` on a temporary DAGSTER_HOME runs inserted tasks."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from benchmarks._daemon import running_daemon
from juggernaut_assets.tasks.create import add_task
from tests.queue_driver import task_row

PROJECT = Path(__file__).resolve().parent.parent
TERMINAL = {"completed", "failed", "blocked", "waiting_approval", "cancelled"}

pytestmark = pytest.mark.e2e


@pytest.fixture
def daemon(db_url: str, tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "deploy" / "dagster.sqlite.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "JUGGERNAUT_DATABASE_URL": db_url,
        "JUGGERNAUT_DATA_DIR": str(tmp_path / "data"),
        "JUGGERNAUT_SENSOR_INTERVAL_SECONDS": "1",
        "JUGGERNAUT_HEARTBEAT_SECONDS": "3",
        # Runs end as soon as the queue is empty, so the test can read their final status.
        "JUGGERNAUT_RUN_IDLE_SECONDS": "0",
    }
    with running_daemon(env, tmp_path / "daemon.log"):
        yield home


def _wait_terminal(db_url: str, ids: list[str], timeout: float = 150) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = {i: task_row(db_url, i) for i in ids}
        if all(r.status in TERMINAL for r in rows.values()):
            return rows
        time.sleep(1)
    raise AssertionError({i: (r.status, r.error_message) for i, r in rows.items()})


def test_daemon_carries_out_inserted_tasks_and_shows_their_artifacts(daemon, governance_db, db_url):
    with governance_db.session() as s:
        ok = [add_task(s, "analysis", {"sql": f"SELECT {n} AS n"})[0].id for n in range(3)]
        bad = add_task(s, "analysis", {"sql": "DROP TABLE governance_tasks"})[0].id
        code = add_task(s, "code_fix", {"repo": "acme/app", "instruction": "fix"})[0].id
        scan = add_task(s, "scan", {"asset": "task_completion_audit"})[0].id
        bad_scan = add_task(s, "scan", {"asset": "no_such_asset"})[0].id
    rows = _wait_terminal(db_url, [*ok, bad, code, scan, bad_scan])
    assert {rows[i].status for i in ok} == {"completed"}
    assert all(rows[i].verification_status == "verified" for i in ok)
    assert rows[bad].status == "failed" and "DROP" in rows[bad].error_message
    assert rows[code].error_message == "GITHUB_TOKEN is not configured"
    with dg.DagsterInstance.from_config(str(daemon)) as instance:
        events = instance.fetch_materializations(dg.AssetKey("task_runs"), limit=100).records
        partitions = {e.partition_key for e in events}
        runs = instance.get_runs(dg.RunsFilter(job_name="execute_tasks"))
        [scan_run] = instance.get_runs(dg.RunsFilter(tags={"juggernaut/task_id": scan}))
        audits = instance.fetch_materializations(
            dg.AssetKey("task_completion_audit"), limit=20
        ).records
    assert set(ok) <= partitions
    assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert {rows[i].assigned_worker for i in ok} <= {f"dagster-run:{r.run_id}" for r in runs}

    # A scan is its own asset run, launched by scan_tasks_sensor and settled when it ended.
    assert (rows[scan].status, rows[scan].verification_status) == ("completed", "verified")
    assert "unknown asset 'no_such_asset'" in rows[bad_scan].error_message
    assert rows[bad_scan].status == "failed"
    assert scan_run.status == dg.DagsterRunStatus.SUCCESS
    assert rows[scan].assigned_worker == f"dagster-scan:{scan_run.tags['dagster/run_key']}"
    assert scan_run.tags["dagster/sensor_name"] == "scan_tasks_sensor"
    assert scan_run.run_id in {a.run_id for a in audits}
    assert scan_run.run_id in rows[scan].completion_evidence


SLOW_SQL = {
    # ~25 s of work under the 30 s statement timeout (task SQL may not call pg_sleep)
    "postgresql": "SELECT count(*) AS n FROM generate_series(1, 15000) AS a,"
    " generate_series(1, 15000) AS b",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000000)"
    " SELECT COUNT(*) FROM c",
}


def _run_worker_pids(home: Path, run_id: str) -> list[int]:
    """The run worker's pid, from the process-start event Dagster logs for the run."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    pids = set()
    for record in records:
        metadata = record.dagster_event.engine_event_data.metadata or {}
        if "pid" in metadata:
            pids.add(int(metadata["pid"].value))
    return sorted(pids)


def test_killed_run_worker_does_not_leave_its_task_in_progress(daemon, governance_db, db_url):
    dialect = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    with governance_db.session() as s:
        task_id = add_task(s, "analysis", {"sql": SLOW_SQL[dialect]}, max_attempts=1)[0].id
    deadline = time.monotonic() + 90
    while not (task_row(db_url, task_id).assigned_worker or "").startswith("dagster-run:"):
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.5)
    run_id = task_row(db_url, task_id).assigned_worker.removeprefix("dagster-run:")
    pids = []
    while not pids:
        assert time.monotonic() < deadline, "no run worker process found"
        pids = _run_worker_pids(daemon, run_id)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    row = _wait_terminal(db_url, [task_id], timeout=90)[task_id]
    assert row.status == "failed"
    # Whichever notices first: Dagster marking the run failed, or the missing heartbeat.
    assert row.error_message.startswith(f"gave up after 1 attempt(s): run {run_id} ")
    with dg.DagsterInstance.from_config(str(daemon)) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE

"""The queue under bad rows, lost runs and stale leases (issue 8: defects 1, 13–18)."""

from __future__ import annotations

import time
from datetime import timedelta

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import GovernanceTask, ToolCall, utcnow
from juggernaut_assets.execution.executor import ClaimedTask, ExecutionEnv, execute_task
from juggernaut_assets.execution.record import record_outcome
from juggernaut_assets.execution.tools.toolbox import ToolBox
from juggernaut_assets.jobs.execute_tasks import BATCH_TAG, execute_tasks
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.claim import claim_tasks
from juggernaut_assets.tasks.create import add_task
from juggernaut_assets.tasks.lease import Heartbeat
from juggernaut_assets.tasks.ownership import LeaseLost, start_task, take_batch
from juggernaut_assets.tasks.settle import release_for_retry
from tests.fakes.http_server import Reply
from tests.queue_driver import drain, evaluate_sensor, launch_without_database, task_row

T = GovernanceTask.__table__


def _add(db, task_type="analysis", payload=None, **kwargs):
    with db.session() as s:
        task, _ = add_task(s, task_type, payload or {"sql": "SELECT 1"}, **kwargs)
    return task.id


def _set_raw(db_url: str, task_id: str, column: str, sql_value: str) -> None:
    """Write a column's text as another program would, bypassing our JSON encoding."""
    with make_engine(db_url).begin() as conn:
        conn.execute(
            sa.text(f"UPDATE governance_tasks SET {column} = {sql_value} WHERE id = :id"),
            {"id": task_id},
        )


def test_undecodable_payload_fails_only_its_own_task(governance_db, db_url, instance, resources):
    resources = {**resources, "task_queue": TaskQueueResource(batch_size=50, run_idle_seconds=0)}
    good = _add(governance_db)
    broken = _add(governance_db)
    not_object = _add(governance_db)
    twice = _add(governance_db)
    if db_url.startswith("sqlite"):
        _set_raw(db_url, broken, "payload", """'{"sql": "SELECT 1"'""")
    else:
        _set_raw(db_url, broken, "payload", """'"{\\"sql\\": \\"SELECT 1\\""'::jsonb""")
    _set_raw(db_url, not_object, "payload", """'[1, 2]'""")
    double = '"{\\"sql\\": \\"SELECT 2 AS n\\"}"'
    _set_raw(db_url, twice, "payload", f"'{double}'")
    assert drain(instance, resources) == 1
    assert task_row(db_url, good).status == "completed"
    row = task_row(db_url, broken)
    assert row.status == "failed"
    assert row.error_message.startswith("payload is not valid JSON")
    assert task_row(db_url, not_object).error_message == ("payload must be a JSON object, got list")
    assert task_row(db_url, twice).status == "completed"
    runs = instance.get_runs(dg.RunsFilter(job_name="execute_tasks"))
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]


def test_undecodable_dependency_list_blocks_only_its_own_task(governance_db, db_url):
    good = _add(governance_db)
    odd = _add(governance_db)
    if db_url.startswith("sqlite"):
        _set_raw(db_url, odd, "depends_on", "'not json'")
    else:
        _set_raw(db_url, odd, "depends_on", """'"not json"'::jsonb""")
    result = claim_tasks(governance_db.engine, limit=10, batch_size=10)
    assert [t for b in result.batches for t in b.task_ids] == [good]
    row = task_row(db_url, odd)
    assert (row.status, row.error_message) == ("blocked", "dependency 'not json' is not a task id")


def test_task_of_a_run_that_failed_before_taking_it_uses_no_attempt(
    governance_db, db_url, instance, resources
):
    task_id = _add(governance_db, max_attempts=1)
    [request] = evaluate_sensor(instance, resources).run_requests
    run = launch_without_database(instance, resources, request)
    assert not run.success
    evaluate_sensor(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.attempt_count) == ("pending", 0)
    assert "(no attempt used)" in row.error_message
    assert row.error_message.count("before") == 1
    _set_raw(db_url, task_id, "next_retry_at", "NULL")
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.attempt_count) == ("completed", 1)


def test_claim_never_starts_a_task_beyond_its_max_attempts(governance_db, db_url):
    exhausted = _add(governance_db, max_attempts=3)
    _set_raw(db_url, exhausted, "attempt_count", "3")
    ready = _add(governance_db)
    result = claim_tasks(governance_db.engine, limit=10, batch_size=10)
    assert [t for b in result.batches for t in b.task_ids] == [ready]
    row = task_row(db_url, exhausted)
    assert row.status == "failed"
    assert row.error_message.startswith("no attempts left (3 of 3 used)")
    assert row.failure_reason == row.error_message


def test_tasks_waiting_on_dependencies_do_not_starve_a_ready_task(governance_db, db_url):
    awaiting = _add(governance_db)
    _set_raw(db_url, awaiting, "status", "'awaiting_pr_merge'")
    for _ in range(5):
        _add(governance_db, priority="critical", depends_on=[awaiting])
    ready = _add(governance_db, priority="low")
    result = claim_tasks(governance_db.engine, limit=1, batch_size=1)
    assert [t for b in result.batches for t in b.task_ids] == [ready]


def _run_holding(db, run_id: str) -> str:
    """A task claimed, taken and started by `run_id`; returns its id."""
    task_id = _add(db)
    batch = claim_tasks(db.engine, limit=1, batch_size=1).batches[0]
    take_batch(db.engine, batch.key, run_id)
    start_task(db.engine, task_id, f"dagster-run:{run_id}")
    return task_id


def _box(db, task_id: str, worker: str, tmp_path, server_url: str) -> ToolBox:
    host = server_url.removeprefix("http://")
    return ToolBox(
        db.engine,
        task_id,
        TaskToolsResource(http_allowed_hosts=[host]),
        tmp_path,
        httpx.Client(),
        worker=worker,
    )


def test_side_effect_of_a_run_that_lost_its_task_is_never_started(
    governance_db, db_url, tmp_path, http_server
):
    """Run A goes silent, the reaper gives its task to run B: A's next call is fenced off."""
    task_id = _run_holding(governance_db, "run-a")
    with governance_db.engine.begin() as conn:
        release_for_retry(conn, [task_id], "silent", worker="dagster-run:run-a")
    _set_raw(db_url, task_id, "next_retry_at", "NULL")
    batch = claim_tasks(governance_db.engine, limit=1, batch_size=1).batches[0]
    take_batch(governance_db.engine, batch.key, "run-b")
    url = http_server.route("POST", "/charge", Reply(200, {"ok": True}))
    box = _box(governance_db, task_id, "dagster-run:run-a", tmp_path, http_server.url)
    with pytest.raises(LeaseLost):
        box.call("http", {"method": "POST", "url": url})
    assert http_server.received == []
    with governance_db.session() as s:
        assert s.scalars(sa.select(ToolCall).where(ToolCall.task_id == task_id)).all() == []


def test_side_effect_under_a_stale_lease_is_never_started(
    governance_db, db_url, tmp_path, http_server
):
    """A run whose heartbeats stopped reaching the database may not start a side effect."""
    task_id = _run_holding(governance_db, "run-a")
    with governance_db.session() as s:
        s.get(GovernanceTask, task_id).updated_at = utcnow() - timedelta(seconds=61)
    url = http_server.route("POST", "/charge", Reply(200, {"ok": True}))
    box = _box(governance_db, task_id, "dagster-run:run-a", tmp_path, http_server.url)
    with pytest.raises(LeaseLost):
        box.call("http", {"method": "POST", "url": url})
    assert http_server.received == []
    with pytest.raises(LeaseLost):
        start_task(governance_db.engine, task_id, "dagster-run:run-a")


def test_heartbeat_that_cannot_reach_the_database_reports_the_lease_lost():
    dead = sa.create_engine("sqlite:////nonexistent/dir/x.db")
    with Heartbeat(dead, "dagster-run:x", interval=0.05) as heartbeat:
        assert not heartbeat.lost
        time.sleep(0.3)
        assert heartbeat.lost


def test_outcome_of_a_run_that_died_before_its_event_is_reported_by_the_sensor(
    governance_db, db_url, instance, resources, tmp_path
):
    """The outcome is committed, the process dies before `log_event`: the sensor reports it."""
    finished = execute_tasks.execute_in_process(
        run_config={"ops": {"execute_task_batch": {"config": {"batch_key": "nothing"}}}},
        resources=resources,
        instance=instance,
    )
    worker = f"dagster-run:{finished.run_id}"
    task_id = _add(governance_db, payload={"sql": "SELECT 5 AS n"})
    batch = claim_tasks(governance_db.engine, limit=1, batch_size=1).batches[0]
    [taken] = take_batch(governance_db.engine, batch.key, finished.run_id)
    attempt = start_task(governance_db.engine, task_id, worker)
    env = ExecutionEnv(
        governance_db.engine, TaskToolsResource(), GitHubResource(), tmp_path, httpx.Client()
    )
    outcome = execute_task(ClaimedTask(task_id, "analysis", taken.payload, attempt), env, worker)
    assert record_outcome(governance_db.engine, outcome, worker)
    assert task_row(db_url, task_id).event_pending
    first = evaluate_sensor(instance, resources)
    [event] = first.asset_events
    assert isinstance(event, dg.AssetMaterialization) and event.partition == task_id
    assert event.metadata["state"].value == "completed"
    assert "query_result" in event.metadata["artifacts"].value
    second = evaluate_sensor(instance, resources, cursor=first.cursor)
    assert second.asset_events == []
    assert not task_row(db_url, task_id).event_pending


def test_outcomes_written_by_a_run_are_not_reported_twice(
    governance_db, db_url, instance, resources
):
    task_id = _add(governance_db)
    drain(instance, resources)
    assert task_row(db_url, task_id).status == "completed"
    assert not task_row(db_url, task_id).event_pending
    assert evaluate_sensor(instance, resources).asset_events == []


def _started_batch_run(instance: dg.DagsterInstance, key: str) -> dg.DagsterRun:
    """A run of the batch that started and then died before taking its tasks."""
    config = {"ops": {"execute_task_batch": {"config": {"batch_key": key}}}}
    run = instance.create_run_for_job(execute_tasks, run_config=config, tags={BATCH_TAG: key})
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name
        ),
    )
    return run


def test_batch_whose_run_started_but_never_took_it_is_released_and_the_run_failed(
    governance_db, db_url, instance, resources, monkeypatch
):
    monkeypatch.setenv("JUGGERNAUT_HEARTBEAT_SECONDS", "0.05")
    task_id = _add(governance_db, max_attempts=1)
    batch = claim_tasks(governance_db.engine, limit=1, batch_size=1).batches[0]
    run = _started_batch_run(instance, batch.key)
    first = evaluate_sensor(instance, resources)
    assert task_row(db_url, task_id).status == "in_progress"
    assert "1 executor run(s) still working" in first.skip_reason.skip_message
    time.sleep(0.3)
    evaluate_sensor(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.attempt_count) == ("pending", 0)
    assert f"run {run.run_id} started" in row.error_message
    assert "never took its batch" in row.error_message
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_run_whose_heartbeats_fail_stops_before_starting_more_tasks(
    governance_db, db_url, tmp_path, monkeypatch
):
    """The heartbeat cannot reach the database (the rest of the run still can): after two
    missed beats the run starts nothing more, and what it had not started used no attempt."""
    from juggernaut_assets.execution import handlers
    from juggernaut_assets.execution.executor import run_batch
    from juggernaut_assets.execution.registry import HandlerName
    from juggernaut_assets.tasks import lease

    monkeypatch.setenv("JUGGERNAUT_HEARTBEAT_SECONDS", "0.05")

    def unreachable(engine, worker):
        raise sa.exc.OperationalError("UPDATE governance_tasks", {}, Exception("no route"))

    monkeypatch.setattr(lease, "touch", unreachable)
    original = handlers.HANDLERS[HandlerName.ANALYSIS]

    def slow(ctx):
        time.sleep(0.3)
        return original(ctx)

    monkeypatch.setitem(handlers.HANDLERS, HandlerName.ANALYSIS, slow)
    ids = [_add(governance_db) for _ in range(3)]
    batch = claim_tasks(governance_db.engine, limit=5, batch_size=5).batches[0]
    env = ExecutionEnv(
        governance_db.engine, TaskToolsResource(), GitHubResource(), tmp_path, httpx.Client()
    )
    done = []
    with pytest.raises(LeaseLost):
        for outcome in run_batch(env, batch.key, "run-a"):
            done.append(outcome.task_id)
    assert len(done) == 1
    rows = {i: task_row(db_url, i) for i in ids}
    assert rows[done[0]].status == "completed"
    rest = [rows[i] for i in ids if i != done[0]]
    assert [(r.status, r.attempt_count) for r in rest] == [("pending", 0), ("pending", 0)]
    assert all("(no attempt used)" in r.error_message for r in rest)

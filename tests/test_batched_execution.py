"""The executor's batched path: chunks of starts and outcomes, runs that claim more work,
events written a chunk at a time, and the sensor's cap on live executor runs."""

from __future__ import annotations

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.models import TaskArtifact, utcnow
from juggernaut_assets.execution import handlers
from juggernaut_assets.execution.executor import ExecutionEnv, run_batch, run_batches
from juggernaut_assets.execution.outcome import Ending, TaskOutcome
from juggernaut_assets.execution.phases import PHASES, ChunkSizer, PhaseClock
from juggernaut_assets.execution.record import record_outcomes
from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.jobs.execute_tasks import execute_tasks
from juggernaut_assets.jobs.task_feed import TaskFeed
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.claim import claim_tasks, run_worker
from juggernaut_assets.tasks.create import add_task
from juggernaut_assets.tasks.ownership import start_tasks, take_batch
from juggernaut_assets.tasks.reap import RunInfo, reap
from tests.queue_driver import drain, evaluate_sensor, task_row


def _add(db, n: int, sql: str = "SELECT 1 AS one") -> list[str]:
    with db.session() as s:
        return [add_task(s, "analysis", {"sql": sql}, title=f"t{i}")[0].id for i in range(n)]


def _env(db, tmp_path) -> ExecutionEnv:
    return ExecutionEnv(
        engine=db.engine,
        tools=TaskToolsResource(),
        github=GitHubResource(),
        artifacts_root=tmp_path,
        http=httpx.Client(),
    )


def test_chunk_size_grows_for_fast_tasks_and_stays_one_for_slow_ones():
    sizer = ChunkSizer(target_s=0.2, largest=50)
    assert sizer.size() == 1, "nothing known yet: one task"
    for _ in range(5):
        sizer.observe(0.001)
    assert sizer.size() == 50
    slow = ChunkSizer(target_s=0.2, largest=50)
    slow.observe(3.0)
    assert slow.size() == 1
    slow.observe(0.001)
    assert slow.size() == 1, "one fast task does not undo a slow mean at once"


def test_phase_clock_adds_up_time_per_phase():
    clock = PhaseClock()
    with clock.phase("handler"):
        pass
    with pytest.raises(ValueError), clock.phase("recording"):
        raise ValueError("still counted")
    totals = clock.totals()
    assert set(totals) == set(PHASES)
    assert clock.seconds["handler"] > 0 and clock.seconds["recording"] > 0


def test_a_chunk_of_outcomes_is_recorded_only_for_tasks_the_run_still_holds(governance_db, db_url):
    ids = _add(governance_db, 3)
    batch = claim_tasks(governance_db.engine, limit=5, batch_size=5).batches[0]
    take_batch(governance_db.engine, batch.key, "run-a")
    worker = run_worker("run-a")
    attempts = start_tasks(governance_db.engine, ids, worker)
    with governance_db.engine.begin() as conn:  # another worker took the second task meanwhile
        conn.execute(
            sa.text(
                "UPDATE governance_tasks SET assigned_worker = 'dagster-run:other' WHERE id = :i"
            ),
            {"i": ids[1]},
        )
    outcomes = [
        TaskOutcome(ids[0], "analysis", Ending.FAILED, "bad input", attempts[ids[0]]),
        TaskOutcome(ids[1], "analysis", Ending.FAILED, "bad input", attempts[ids[1]]),
        TaskOutcome(ids[2], "analysis", Ending.BLOCKED, "no token", attempts[ids[2]]),
    ]
    record_outcomes(governance_db.engine, outcomes, worker)
    assert [o.recorded for o in outcomes] == [True, False, True]
    rows = [task_row(db_url, i) for i in ids]
    assert [r.status for r in rows] == ["failed", "in_progress", "blocked"]
    assert rows[0].failure_reason == "bad input" and rows[2].error_message == "no token"
    assert rows[1].error_message is None, "the task another worker holds is untouched"


def test_fast_tasks_share_their_start_and_record_transactions(governance_db, db_url, tmp_path):
    ids = _add(governance_db, 30)
    batch = claim_tasks(governance_db.engine, limit=50, batch_size=50).batches[0]
    commits = []

    def count(conn):
        commits.append(conn)

    sa.event.listen(governance_db.engine, "commit", count)
    try:
        chunks = list(run_batches(_env(governance_db, tmp_path), batch.key, "run-a"))
    finally:
        sa.event.remove(governance_db.engine, "commit", count)
    assert sum(len(c) for c in chunks) == 30 and all(o.recorded for c in chunks for o in c)
    assert len(chunks) < 30, "chunks grow once tasks are known to be fast"
    assert len(commits) <= 2 * len(chunks) + 2, "one start and one record per chunk, one take"
    assert {task_row(db_url, i).status for i in ids} == {"completed"}
    with governance_db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(TaskArtifact)) == 30


def _dies_on_call(number: int):
    """An analysis handler whose `number`-th call is interrupted (Ctrl-C, a stopping worker)."""
    calls = []

    def handler(ctx):
        calls.append(ctx.task_id)
        if len(calls) == number:
            raise KeyboardInterrupt
        return handlers.run_query_task(ctx)

    return handler


def test_a_run_stopped_mid_chunk_gives_back_the_attempts_it_never_began(
    governance_db, db_url, tmp_path, monkeypatch
):
    ids = _add(governance_db, 4)
    batch = claim_tasks(governance_db.engine, limit=5, batch_size=5).batches[0]
    monkeypatch.setitem(handlers.HANDLERS, HandlerName.ANALYSIS, _dies_on_call(2))
    with pytest.raises(KeyboardInterrupt):
        list(run_batch(_env(governance_db, tmp_path), batch.key, "run-1"))
    rows = {i: task_row(db_url, i) for i in ids}
    first, interrupted, *never = batch.task_ids
    assert rows[first].status == "completed"
    assert rows[interrupted].status == "pending" and rows[interrupted].attempt_count == 1
    for task_id in never:
        assert rows[task_id].status == "pending"
        assert rows[task_id].attempt_count == 0, "started with its chunk, never begun"


def test_a_run_stopped_mid_chunk_records_the_outcomes_it_already_has(
    governance_db, db_url, tmp_path, monkeypatch
):
    _add(governance_db, 4)
    batch = claim_tasks(governance_db.engine, limit=5, batch_size=5).batches[0]
    monkeypatch.setitem(handlers.HANDLERS, HandlerName.ANALYSIS, _dies_on_call(3))
    with pytest.raises(KeyboardInterrupt):
        list(run_batch(_env(governance_db, tmp_path), batch.key, "run-1"))
    first, done_in_chunk, interrupted, never = (task_row(db_url, i) for i in batch.task_ids)
    assert first.status == "completed"
    assert done_in_chunk.status == "completed", "its chunk was cut short, its outcome kept"
    assert done_in_chunk.verification_status == "verified"
    assert (interrupted.status, interrupted.attempt_count) == ("pending", 1)
    assert (never.status, never.attempt_count) == ("pending", 0)


def test_a_run_claims_the_next_batch_itself_and_the_reaper_leaves_it_alone(
    governance_db, db_url, instance, tmp_path
):
    first = _add(governance_db, 2)
    batch = claim_tasks(governance_db.engine, limit=2, batch_size=2).batches[0]
    later = _add(governance_db, 3)
    queue = TaskQueueResource(batch_size=2, run_idle_seconds=0)
    clock = PhaseClock()
    feed = TaskFeed(governance_db.engine, instance, queue, clock, run_worker("run-a"))
    seen_by_reaper = []

    def feed_and_reap():
        key = feed()
        live = {"run-a": RunInfo("run-a", "STARTED", utcnow())}
        seen_by_reaper.append(reap(governance_db.engine, lambda runs, keys: (live, {})))
        return key

    outcomes = [
        o
        for chunk in run_batches(_env(governance_db, tmp_path), batch.key, "run-a", feed_and_reap)
        for o in chunk
    ]
    assert sorted(o.task_id for o in outcomes) == sorted(first + later)
    assert feed.batches == 2
    assert all(not r.lost_batches and not r.released for r in seen_by_reaper)
    assert set(instance.get_dynamic_partitions("task_runs")) == set(later)
    assert clock.seconds["claim"] > 0


def test_a_run_waits_for_work_only_as_long_as_it_is_told(governance_db, instance):
    naps = []
    queue = TaskQueueResource(run_idle_seconds=1.0, poll_seconds=0.25)
    feed = TaskFeed(governance_db.engine, instance, queue, PhaseClock(), "w", sleep=naps.append)
    assert feed() is None
    assert len(naps) >= 1 and all(n == 0.25 for n in naps)
    off = TaskQueueResource(claim_more=False, run_idle_seconds=60)
    _add(governance_db, 1)
    assert TaskFeed(governance_db.engine, instance, off, PhaseClock(), "w")() is None


def test_every_task_of_a_batched_run_gets_its_event(governance_db, db_url, instance, resources):
    good = _add(governance_db, 6)
    bad = _add(governance_db, 2, sql="SELEC broken")
    resources = {**resources, "task_queue": TaskQueueResource(batch_size=50, run_idle_seconds=0)}
    drain(instance, resources)
    materialized = instance.fetch_materializations(dg.AssetKey("task_runs"), limit=100).records
    observed = instance.fetch_observations(dg.AssetKey("task_runs"), limit=100).records
    assert sorted(r.partition_key for r in materialized) == sorted(good)
    assert sorted(r.partition_key for r in observed) == sorted(bad)
    assert {task_row(db_url, i).event_pending for i in good + bad} == {None}
    [run] = instance.get_runs(dg.RunsFilter(job_name=execute_tasks.name))
    assert run.tags["juggernaut/completed"] == "6" and run.tags["juggernaut/failed"] == "2"


def test_the_sensor_launches_no_run_while_the_live_runs_fill_every_slot(
    governance_db, instance, resources
):
    _add(governance_db, 3)
    resources = {**resources, "task_queue": TaskQueueResource(batch_size=1, max_executor_runs=2)}
    first = evaluate_sensor(instance, resources)
    assert len(first.run_requests) == 2, "two free slots: two batches"
    for request in first.run_requests:
        instance.create_run_for_job(execute_tasks, run_config=request.run_config, tags=request.tags)
    second = evaluate_sensor(instance, resources, cursor=first.cursor)
    assert second.run_requests == []
    assert "2 executor run(s) working (at most 2)" in second.skip_reason.skip_message


def test_beside_a_live_run_the_sensor_adds_a_run_that_claims_its_own_work(
    governance_db, db_url, instance, resources
):
    ids = _add(governance_db, 4)
    queue = TaskQueueResource(batch_size=1, max_executor_runs=2, run_idle_seconds=0)
    resources = {**resources, "task_queue": queue}
    live = instance.create_run_for_job(
        execute_tasks, run_config={"ops": {"execute_task_batch": {"config": {"batch_key": "x"}}}}
    )
    result = evaluate_sensor(instance, resources)
    [request] = result.run_requests
    assert request.tags["juggernaut/task_count"] == "0", "nothing held for a run not started"
    assert {task_row(db_url, i).status for i in ids} == {"pending"}
    finished = execute_tasks.execute_in_process(
        run_config=request.run_config, resources=resources, instance=instance, tags=request.tags
    )
    assert finished.success and live.run_id != finished.run_id
    assert {task_row(db_url, i).status for i in ids} == {"completed"}
    assert {task_row(db_url, i).assigned_worker for i in ids} == {run_worker(finished.run_id)}
    quiet = evaluate_sensor(instance, resources, cursor=result.cursor)
    assert quiet.run_requests == [], "no waiting work: no helper"


def test_a_task_settled_by_a_claim_gets_its_event_with_the_reason(
    governance_db, db_url, instance, resources
):
    with governance_db.session() as s:
        bad = add_task(s, "analysis", {"sql": "SELEC nothing"})[0].id
        after = add_task(s, "analysis", {"sql": "SELECT 1"}, depends_on=[bad])[0].id
    drain(instance, resources)
    assert task_row(db_url, after).status == "blocked"
    assert task_row(db_url, after).event_pending is None, "its event was written"
    [record] = [
        r
        for r in instance.fetch_observations(dg.AssetKey("task_runs"), limit=10).records
        if r.partition_key == after
    ]
    metadata = record.asset_observation.metadata
    assert metadata["state"].value == "blocked"
    assert bad in metadata["reason"].value
    assert instance.has_dynamic_partition("task_runs", after)


def test_a_run_that_holds_nothing_and_is_not_young_does_not_keep_the_queue_waiting(
    governance_db, instance, resources, monkeypatch
):
    """A run whose worker died while it held no task (idle, between batches) stays STARTED;
    once it is older than a lease plus the idle wait, the sensor stops counting it."""
    import time

    monkeypatch.setenv("JUGGERNAUT_HEARTBEAT_SECONDS", "0.1")
    queue = TaskQueueResource(batch_size=5, max_executor_runs=1, run_idle_seconds=0)
    resources = {**resources, "task_queue": queue}
    instance.create_run_for_job(
        execute_tasks, run_config={"ops": {"execute_task_batch": {"config": {"batch_key": "x"}}}}
    )
    _add(governance_db, 2)
    assert evaluate_sensor(instance, resources).run_requests == [], "a young run counts"
    time.sleep(0.6)
    [request] = evaluate_sensor(instance, resources).run_requests
    assert request.tags["juggernaut/task_count"] == "2"


def test_a_started_run_that_holds_nothing_and_writes_nothing_is_failed_with_the_reason(
    governance_db, instance, resources, monkeypatch
):
    """An idle worker that died leaves its run STARTED: once quiet for a lease plus the idle
    wait it is failed, with why; a run that still writes events is left alone."""
    import time

    monkeypatch.setenv("JUGGERNAUT_HEARTBEAT_SECONDS", "0.1")
    queue = TaskQueueResource(batch_size=5, max_executor_runs=2, run_idle_seconds=0)
    resources = {**resources, "task_queue": queue}
    dead, working = (_started_run(instance, key) for key in ("dead", "working"))
    evaluate_sensor(instance, resources)
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.STARTED, "too soon"
    time.sleep(0.6)
    instance.report_engine_event("polling for work", working)
    evaluate_sensor(instance, resources)
    assert instance.get_run_by_id(working.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    [failure] = instance.get_records_for_run(
        dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    assert "held no task and wrote no event" in failure.event_log_entry.message


def _started_run(instance: dg.DagsterInstance, key: str) -> dg.DagsterRun:
    config = {"ops": {"execute_task_batch": {"config": {"batch_key": key}}}}
    run = instance.create_run_for_job(execute_tasks, run_config=config)
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name
        ),
    )
    return run


def test_with_one_batch_per_run_the_sensor_claims_beside_live_runs(
    governance_db, instance, resources
):
    _add(governance_db, 3)
    queue = TaskQueueResource(batch_size=1, max_executor_runs=3, claim_more=False)
    instance.create_run_for_job(
        execute_tasks, run_config={"ops": {"execute_task_batch": {"config": {"batch_key": "x"}}}}
    )
    result = evaluate_sensor(instance, {**resources, "task_queue": queue})
    assert [r.tags["juggernaut/task_count"] for r in result.run_requests] == ["1", "1"]

from __future__ import annotations

import dagster as dg

from juggernaut_assets.assets.task_runs import TASK_PARTITIONS
from juggernaut_assets.db.models import GovernanceTask
from juggernaut_assets.jobs.execute_tasks import BATCH_TAG, execute_tasks
from juggernaut_assets.sensors.new_tasks import _prune_requests
from juggernaut_assets.tasks.claim import claim_tasks
from juggernaut_assets.tasks.create import add_task
from tests.queue_driver import evaluate_sensor, launch, launch_without_database, task_row


def _add(db, n=1, task_type="analysis"):
    ids = []
    with db.session() as s:
        for _ in range(n):
            task, _ = add_task(s, task_type, {"sql": "SELECT 1"})
            ids.append(task.id)
    return ids


def test_sensor_says_what_it_saw_when_there_is_nothing_to_do(governance_db, instance, resources):
    _add(governance_db, task_type="content_creation")
    result = evaluate_sensor(instance, resources)
    assert result.run_requests == []
    assert result.skip_reason.skip_message == "1 due pending task(s) seen; 1 no handler"


def test_sensor_claims_batches_and_requests_one_run_each(governance_db, instance, resources):
    ids = _add(governance_db, 3)
    result = evaluate_sensor(instance, resources)
    assert [int(r.tags["juggernaut/task_count"]) for r in result.run_requests] == [2, 1]
    for request in result.run_requests:
        assert request.run_key == request.tags[BATCH_TAG]
        assert (
            request.run_config["ops"]["execute_task_batch"]["config"]["batch_key"]
            == request.run_key
        )
    [partitions] = result.dynamic_partitions_requests
    assert sorted(partitions.partition_keys) == sorted(ids)
    assert {task_row(resources["governance_db"].url, i).status for i in ids} == {"in_progress"}


def test_tick_evaluated_twice_launches_nothing_twice(governance_db, instance, resources):
    _add(governance_db, 3)
    first = evaluate_sensor(instance, resources)
    second = evaluate_sensor(instance, resources)
    first_keys = {r.run_key for r in first.run_requests}
    assert {r.run_key for r in second.run_requests} == first_keys
    assert not second.dynamic_partitions_requests
    for request in first.run_requests:
        launch(instance, resources, request)
    third = evaluate_sensor(instance, resources)
    assert third.run_requests == []


def test_batch_whose_run_was_never_created_is_relaunched_under_its_key(
    governance_db, instance, resources
):
    _add(governance_db, 1)
    batch = claim_tasks(governance_db.engine, limit=5, batch_size=5).batches[0]
    result = evaluate_sensor(instance, resources)
    assert [r.run_key for r in result.run_requests] == [batch.key]


def test_tasks_of_a_failed_run_go_back_to_the_queue(governance_db, db_url, instance, resources):
    [task_id] = _add(governance_db, 1)
    [request] = evaluate_sensor(instance, resources).run_requests
    run = launch_without_database(instance, resources, request)
    assert not run.success
    assert task_row(db_url, task_id).status == "in_progress"
    result = evaluate_sensor(instance, resources)
    row = task_row(db_url, task_id)
    assert row.status == "pending"
    assert row.attempt_count == 0  # the run never started the task (issue 8, defect 13)
    assert f"the run for batch {request.run_key} ended (FAILURE)" in row.error_message
    assert "released" in result.skip_reason.skip_message


def test_tasks_held_by_a_vanished_or_finished_run_are_released(
    governance_db, db_url, instance, resources
):
    ids = _add(governance_db, 2)
    claim_tasks(governance_db.engine, limit=5, batch_size=5)
    finished = execute_tasks.execute_in_process(
        run_config={"ops": {"execute_task_batch": {"config": {"batch_key": "nothing"}}}},
        resources=resources,
        instance=instance,
    )
    workers = [f"dagster-run:{finished.run_id}", "dagster-run:7f1c0000-dead-beef-0000-000000000000"]
    with governance_db.session() as s:
        for task_id, worker in zip(ids, workers, strict=True):
            s.get(GovernanceTask, task_id).assigned_worker = worker
    evaluate_sensor(instance, resources)
    messages = [task_row(db_url, i).error_message for i in ids]
    assert f"run {finished.run_id} ended (SUCCESS)" in messages[0]
    assert "no longer exists" in messages[1]
    assert {task_row(db_url, i).status for i in ids} == {"pending"}


def test_partition_retention_removes_the_oldest_task_partitions(instance):
    keys = [f"task-{i:03d}" for i in range(130)]
    instance.add_dynamic_partitions(TASK_PARTITIONS.name, keys)
    [request] = _prune_requests(instance, retention=100)
    assert isinstance(request, dg.DeleteDynamicPartitionsRequest)
    assert request.partition_keys == keys[:30]


def _started_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """A run in STARTED state whose worker does nothing (like one whose process was killed)."""
    config = {"ops": {"execute_task_batch": {"config": {"batch_key": "k"}}}}
    run = instance.create_run_for_job(execute_tasks, run_config=config)
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name
        ),
    )
    return run


def test_tasks_of_a_run_that_stopped_heartbeating_are_released_and_the_run_failed(
    governance_db, db_url, instance, resources
):
    """A live-looking run whose worker was killed: no heartbeat, so its tasks come back."""
    from datetime import timedelta

    from juggernaut_assets.db.models import utcnow

    [task_id] = _add(governance_db, 1)
    claim_tasks(governance_db.engine, limit=5, batch_size=5)
    run = _started_run(instance)
    with governance_db.session() as s:
        task = s.get(GovernanceTask, task_id)
        task.assigned_worker = f"dagster-run:{run.run_id}"
        task.updated_at = utcnow() - timedelta(minutes=3)
    evaluate_sensor(instance, resources)
    row = task_row(db_url, task_id)
    assert row.status == "pending"
    assert f"run {run.run_id} sent no heartbeat for 120 s" in row.error_message
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_working_run_keeps_its_tasks(governance_db, db_url, instance, resources):
    [task_id] = _add(governance_db, 1)
    claim_tasks(governance_db.engine, limit=5, batch_size=5)
    run = _started_run(instance)
    with governance_db.session() as s:
        s.get(GovernanceTask, task_id).assigned_worker = f"dagster-run:{run.run_id}"
    result = evaluate_sensor(instance, resources)
    assert task_row(db_url, task_id).status == "in_progress"
    assert "1 executor run(s) still working" in result.skip_reason.skip_message

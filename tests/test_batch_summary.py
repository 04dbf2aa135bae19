"""A batch run says how its tasks ended: output metadata and run tags, not just "Success"."""

from __future__ import annotations

import dagster as dg

from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.execution.outcome import Ending, TaskOutcome
from juggernaut_assets.jobs.execute_tasks import summary_state, summary_tags
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.tasks.create import add_task
from tests.conftest import platform_resources
from tests.queue_driver import evaluate_sensor, launch


def test_batch_run_counts_completed_failed_blocked_and_waiting_tasks(
    governance_db, db_url, instance
):
    queue = TaskQueueResource(batch_size=10, max_tasks_per_tick=10, run_idle_seconds=0)
    resources = platform_resources(db_url, task_queue=queue)
    with governance_db.session() as s:
        add_task(s, "analysis", {"sql": "SELECT 1 AS one"}, title="counts one")
        add_task(s, "analysis", {"sql": "SELECT 2 AS two"}, title="counts two")
        add_task(s, "analysis", {"params": {}}, title="no sql: fails")
        add_task(
            s,
            "code",
            {"repo": "o/r", "title": "t", "changes": [{"path": "a.txt", "content": "x"}]},
            title="no token: blocked",
        )
    [request] = evaluate_sensor(instance, resources).run_requests
    result = launch(instance, resources, request)
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    tags = {k: v for k, v in run.tags.items() if k.startswith("juggernaut/")}
    assert {k: tags[k] for k in ("juggernaut/completed", "juggernaut/failed")} == {
        "juggernaut/completed": "2",
        "juggernaut/failed": "1",
    }
    assert int(tags["juggernaut/blocked"]) + int(tags["juggernaut/waiting"]) == 1
    assert tags["juggernaut/retrying"] == tags["juggernaut/not_recorded"] == "0"
    [output] = [
        e
        for e in result.all_node_events
        if e.event_type_value == dg.DagsterEventType.STEP_OUTPUT.value
    ]
    metadata = output.step_output_data.metadata
    assert (metadata["completed"].value, metadata["failed"].value) == (2, 1)
    assert metadata["summary"].value.startswith("2 completed, 1 failed")
    table = metadata["not_completed"].value
    assert "| analysis | failed |" in table and "| code |" in table
    assert "counts one" not in table  # completed tasks are not listed


def test_an_empty_batch_is_tagged_with_zero_counts(instance, db_url):
    from juggernaut_assets.jobs.execute_tasks import execute_tasks

    result = execute_tasks.execute_in_process(
        run_config={"ops": {"execute_task_batch": {"config": {"batch_key": "nothing"}}}},
        resources=platform_resources(db_url),
        instance=instance,
    )
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["juggernaut/completed"] == run.tags["juggernaut/failed"] == "0"


def test_summary_state_names_where_each_task_stands():
    def outcome(ending: Ending, status: TaskStatus | None, recorded: bool = True) -> TaskOutcome:
        return TaskOutcome("t", "analysis", ending, "m", 1, next_status=status, recorded=recorded)

    states = [
        summary_state(outcome(Ending.COMPLETED, TaskStatus.COMPLETED)),
        summary_state(outcome(Ending.AWAITING, TaskStatus.AWAITING_PR_MERGE)),
        summary_state(outcome(Ending.WAITING_APPROVAL, TaskStatus.WAITING_APPROVAL)),
        summary_state(outcome(Ending.RETRY, TaskStatus.PENDING)),
        summary_state(outcome(Ending.RETRY, TaskStatus.FAILED)),  # its last attempt
        summary_state(outcome(Ending.BLOCKED, TaskStatus.BLOCKED)),
        summary_state(outcome(Ending.COMPLETED, TaskStatus.COMPLETED, recorded=False)),
    ]
    assert states == [
        "completed",
        "waiting",
        "waiting",
        "retrying",
        "failed",
        "blocked",
        "not_recorded",
    ]
    assert summary_tags({"failed": 3})["juggernaut/failed"] == "3"
    assert summary_tags({})["juggernaut/completed"] == "0"

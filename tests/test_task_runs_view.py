"""What an operator sees of one task on `task_runs`: its state, reason, links and previews."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import dagster as dg

from juggernaut_assets.assets.governance import EXTERNAL_TABLES, OWNERS, governance_tasks
from juggernaut_assets.assets.task_runs import (
    PREVIEW_COLUMNS,
    PREVIEW_ROWS,
    TaskDetails,
    task_details,
    task_event,
    task_runs,
)
from juggernaut_assets.db.enums import ArtifactKind, TaskStatus
from juggernaut_assets.execution.outcome import Artifact, Ending, TaskOutcome
from juggernaut_assets.tasks.create import add_task

UI = "http://localhost:3000"


def _outcome(ending: Ending, message: str, **kwargs) -> TaskOutcome:
    return TaskOutcome("t-1", "analysis", ending, message, attempt=2, duration_s=61.4285, **kwargs)


def _report(instance: dg.DagsterInstance, outcome: TaskOutcome, task: TaskDetails) -> None:
    instance.add_dynamic_partitions("task_runs", [outcome.task_id])
    instance.report_runless_asset_event(task_event(outcome, task))


def test_failed_task_page_leads_with_its_reason(instance):
    task = TaskDetails("Weekly revenue", TaskStatus.FAILED.value, ["dep-1"])
    _report(instance, _outcome(Ending.FAILED, "column revenue does not exist"), task)

    [record] = instance.fetch_observations(task_runs.key, limit=1).records
    metadata = record.asset_observation.metadata
    assert list(metadata)[:4] == ["reason", "title", "task_type", "state"]
    assert metadata["reason"].value == "column revenue does not exist"
    assert (metadata["title"].value, metadata["state"].value) == ("Weekly revenue", "failed")
    assert metadata["attempt"].value == 2 and metadata["duration_s"].value == 61.4
    dep_page = f"{UI}/assets/task_runs?view=events&partition=dep-1&partitions%5B0%5D=dep-1"
    assert metadata["depends_on"].value == f"- [dep-1]({dep_page})"
    assert record.asset_observation.description == "Weekly revenue"
    assert instance.get_latest_materialization_event(task_runs.key) is None

    assert record.asset_observation.tags["juggernaut/state"] == "failed"


def test_blocked_task_is_tagged_with_its_state(instance):
    outcome = _outcome(Ending.BLOCKED, "GITHUB_TOKEN is not set", next_status=TaskStatus.BLOCKED)
    _report(instance, outcome, TaskDetails())
    [record] = instance.fetch_observations(task_runs.key, limit=1).records
    assert record.asset_observation.tags["juggernaut/state"] == "blocked"
    assert record.asset_observation.metadata["reason"].value == "GITHUB_TOKEN is not set"


def test_completed_task_materialises_with_openable_artifacts(instance, tmp_path: Path):
    result = tmp_path / "query_result.json"
    columns = ["a", "b", "c", "d", "e", "f"]
    rows = [[i, "x" * 60, None, 1.5, "e", "f"] for i in range(PREVIEW_ROWS + 3)]
    result.write_text(json.dumps({"columns": columns, "rows": rows}))
    eml = tmp_path / "message.eml"
    message = EmailMessage()
    message["Subject"], message["To"] = "Your domain", "ops@example.org"
    message.set_content("Hello,\n\nthe domain is yours.\n")
    eml.write_bytes(message.as_bytes())
    pr = "https://github.com/acme/app/pull/7"
    artifacts = [
        Artifact(
            ArtifactKind.QUERY_RESULT, uri=str(result), verified=True, details={"row_count": 8}
        ),
        Artifact(ArtifactKind.PULL_REQUEST, uri=pr, external_id="7", verified=True),
        Artifact(
            ArtifactKind.DOMAIN_REGISTRATION,
            uri=None,
            details={"domain": "acme.dev", "rdap_url": "https://rdap.example/domain/acme.dev"},
        ),
        Artifact(ArtifactKind.EMAIL_MESSAGE, uri=str(eml), details={"subject": "Your domain"}),
    ]
    outcome = _outcome(
        Ending.COMPLETED, "8 rows", artifacts=artifacts, next_status=TaskStatus.COMPLETED
    )
    _report(instance, outcome, TaskDetails("Revenue", TaskStatus.COMPLETED.value))

    event = instance.get_latest_materialization_event(task_runs.key)
    metadata = event.asset_materialization.metadata
    assert next(iter(metadata)) == "summary"
    table = metadata["artifact_1_query_result_preview"].value
    assert len(table.records) == PREVIEW_ROWS
    assert [c.name for c in table.schema.columns] == columns[:PREVIEW_COLUMNS]
    assert table.records[0].data["b"] == "x" * 39 + "…"
    assert metadata["artifact_2_pull_request"].value == pr
    assert (
        metadata["artifact_3_domain_registration"].value == "https://rdap.example/domain/acme.dev"
    )
    email_preview = metadata["artifact_4_email_message_preview"].value
    assert email_preview.startswith("**Your domain** to ops@example.org")
    assert "> the domain is yours." in email_preview
    assert f"[7]({pr})" in metadata["artifacts"].value


def test_task_details_reads_title_status_and_dependencies(governance_db):
    with governance_db.session() as s:
        first, _ = add_task(s, "analysis", {"sql": "SELECT 1"}, title="First")
        second, _ = add_task(s, "analysis", {"sql": "SELECT 2"}, depends_on=[first.id])
    details = task_details(governance_db.engine, [first.id, second.id, first.id])
    assert details[first.id] == TaskDetails("First", TaskStatus.PENDING.value, [])
    assert details[second.id] == TaskDetails("analysis", TaskStatus.PENDING.value, [first.id])
    assert task_details(governance_db.engine, []) == {}


def test_queue_heads_the_lineage_and_every_spec_has_an_owner():
    defs = dg.Definitions(assets=[task_runs, *EXTERNAL_TABLES])
    graph = defs.resolve_asset_graph()
    assert graph.get(task_runs.key).parent_keys == {governance_tasks.key}
    assert graph.get(dg.AssetKey("task_artifacts")).parent_keys == {task_runs.key}
    for spec in [task_runs, *EXTERNAL_TABLES]:
        assert list(spec.owners) == OWNERS and spec.kinds, spec.key

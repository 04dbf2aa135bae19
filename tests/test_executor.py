from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.engine import read_only_connection
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact, ToolCall
from juggernaut_assets.execution import handlers
from juggernaut_assets.execution.executor import ExecutionEnv, run_batch
from juggernaut_assets.execution.outcome import HandlerResult
from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks import settle
from juggernaut_assets.tasks.claim import claim_tasks
from juggernaut_assets.tasks.create import add_task
from tests.fakes.http_server import Reply
from tests.queue_driver import drain, task_row
from tests.scan_driver import scan, scan_defs


def _add(db, task_type, payload, **kwargs):
    with db.session() as s:
        task, _ = add_task(s, task_type, payload, **kwargs)
    return task.id


def _artifacts(db, task_id):
    with db.session() as s:
        return s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task_id)).all()


def _tool_calls(db, task_id):
    with db.session() as s:
        return s.scalars(sa.select(ToolCall).where(ToolCall.task_id == task_id)).all()


def test_completed_analysis_has_verified_file_artifact_and_dagster_event(
    governance_db, db_url, instance, resources
):
    task_id = _add(governance_db, "audit", {"sql": "SELECT 7 AS n, 'seven' AS word"})
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("completed", "verified")
    assert row.verified_at is not None and row.completed_at is not None
    [artifact] = _artifacts(governance_db, task_id)
    assert artifact.kind == "query_result" and artifact.verified
    body = json.loads(Path(artifact.uri).read_text())
    assert body["rows"] == [[7, "seven"]] and body["columns"] == ["n", "word"]
    assert f"sha256={artifact.sha256[:12]}" in row.completion_evidence
    event = instance.get_latest_materialization_event(dg.AssetKey("task_runs"))
    assert event.dagster_event.partition == task_id
    metadata = event.asset_materialization.metadata
    assert metadata["state"].value == "completed"
    assert "query_result" in metadata["artifacts"].value


def test_write_statement_is_rejected_and_changes_no_row(governance_db, db_url, instance, resources):
    task_id = _add(governance_db, "analysis", {"sql": "DELETE FROM governance_tasks"})
    sneaky = _add(
        governance_db,
        "database",
        {"sql": "WITH gone AS (DELETE FROM governance_tasks RETURNING id) SELECT * FROM gone"},
    )
    drain(instance, resources)
    assert task_row(db_url, task_id).error_message == (
        "read-only task: DELETE statements are not allowed, only SELECT"
    )
    assert task_row(db_url, sneaky).status == "failed"
    with governance_db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(GovernanceTask)).scalar() == 2


def test_database_itself_refuses_writes_in_read_only_connection(governance_db):
    _add(governance_db, "analysis", {"sql": "SELECT 1"})
    with pytest.raises(sa.exc.DBAPIError), read_only_connection(governance_db.engine) as conn:
        conn.execute(sa.text("UPDATE governance_tasks SET status = 'completed'"))
    with read_only_connection(governance_db.engine) as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM governance_tasks")).scalar() == 1
    with governance_db.engine.connect() as conn:
        assert conn.execute(sa.select(GovernanceTask.status)).scalar() == "pending"
    with governance_db.engine.begin() as conn:  # the pooled connection is writable again
        conn.execute(sa.text("UPDATE governance_tasks SET title = 'still writable'"))


BAD_INPUT = [
    ("analysis", '{"sql": "SELECT 1"', "payload is not valid JSON"),
    ("analysis", {"query": "SELECT 1"}, "payload is missing required field(s): sql"),
    ("analysis", {"sql": "SELECT 1", "pad": "x" * 1_050_000}, "over the 1 MB limit"),
    ("database", {"sql": "SELEC * FROM governance_tasks"}, "SQL does not parse"),
    ("analysis", {"sql": "SELECT * FROM no_such_table"}, "the database refused the query"),
    ("workflow", {"steps": []}, "workflow has no steps"),
    ("workflow", {"steps": [{"tool": "fax", "args": {}}]}, "unknown tool 'fax'"),
]


def test_bad_input_ends_each_task_clearly_and_the_batch_carries_on(
    governance_db, db_url, instance, resources
):
    resources = {**resources, "task_queue": TaskQueueResource(batch_size=50, run_idle_seconds=0)}
    bad = [_add(governance_db, t, p) for t, p, _ in BAD_INPUT]
    unknown = _add(governance_db, "synergy", {})
    good = _add(governance_db, "analysis", {"sql": "SELECT 1"})
    assert drain(instance, resources) == 1
    for task_id, (_, _, message) in zip(bad, BAD_INPUT, strict=True):
        row = task_row(db_url, task_id)
        assert row.status == "failed", (message, row.error_message)
        assert message in row.error_message
    assert task_row(db_url, unknown).error_message == "no handler for task type 'synergy'"
    assert task_row(db_url, good).status == "completed"


def _host(server):
    """The `host:port` of a local server, as the http allowlist names it."""
    return server.url.removeprefix("http://")


def test_workflow_http_step_records_the_call_and_verifies_2xx(
    governance_db, db_url, instance, resources, http_server, monkeypatch
):
    url = http_server.route("GET", "/status", Reply(200, {"ok": True}))
    monkeypatch.setenv("STATUS_TOKEN", "t0p-s3cret-value")
    credentials = {"status": {"env": "STATUS_TOKEN", "hosts": [_host(http_server)]}}
    resources = {
        **resources,
        "task_tools": TaskToolsResource(
            http_allowed_hosts=[_host(http_server)], http_credentials=json.dumps(credentials)
        ),
    }
    task_id = _add(
        governance_db,
        "workflow",
        {"steps": [{"tool": "http", "args": {"url": url, "credential": "status"}}]},
    )
    drain(instance, resources)
    assert task_row(db_url, task_id).status == "completed"
    [call] = _tool_calls(governance_db, task_id)
    assert call.success and call.result["status_code"] == 200
    assert http_server.received[0].headers["Authorization"] == "t0p-s3cret-value"
    assert "t0p-s3cret-value" not in json.dumps([call.arguments, call.result])
    [artifact] = _artifacts(governance_db, task_id)
    assert (artifact.kind, artifact.uri, artifact.external_id) == ("http_response", url, call.id)
    [event] = instance.fetch_materializations(dg.AssetKey("task_runs"), limit=1).records
    metadata = event.asset_materialization.metadata
    previews = [v.value for k, v in metadata.items() if k.endswith("_preview")]
    assert any('"ok": true' in str(p) for p in previews), list(metadata)


def test_workflow_http_5xx_retries_with_backoff_and_4xx_fails(
    governance_db, db_url, instance, resources, http_server
):
    flaky = http_server.route("POST", "/flaky", Reply(503, "busy"))
    missing = http_server.route("GET", "/missing", Reply(404, "nope"))
    resources = {
        **resources,
        "task_tools": TaskToolsResource(http_allowed_hosts=[_host(http_server)]),
    }
    retried = _add(
        governance_db,
        "workflow",
        {"steps": [{"tool": "http", "args": {"url": flaky, "method": "POST"}}]},
    )
    failed = _add(
        governance_db, "workflow", {"steps": [{"tool": "http", "args": {"url": missing}}]}
    )
    drain(instance, resources)
    row = task_row(db_url, retried)
    assert row.status == "pending" and row.next_retry_at is not None
    assert (
        "attempt 1 of 3 did not finish: step 1 of 1 (http): http failed: HTTP 503"
        in row.error_message
    )
    assert task_row(db_url, failed).status == "failed"
    assert not _artifacts(governance_db, failed)


def test_http_allowlist_is_enforced(governance_db, db_url, instance, resources, http_server):
    url = http_server.route("GET", "/x", Reply(200, "fine"))
    resources = {**resources, "task_tools": TaskToolsResource(http_allowed_hosts=["*.example.com"])}
    task_id = _add(governance_db, "workflow", {"steps": [{"tool": "http", "args": {"url": url}}]})
    drain(instance, resources)
    assert (
        "host '127.0.0.1' is not in the http allowlist" in task_row(db_url, task_id).error_message
    )
    assert http_server.received == []


def test_slack_step_posts_to_webhook_and_never_records_it(
    governance_db, db_url, instance, resources, http_server
):
    hook = http_server.route("POST", "/services/T0/B0/secret", Reply(200, "ok"))
    resources = {**resources, "task_tools": TaskToolsResource(slack_webhook_url=hook)}
    task_id = _add(
        governance_db, "workflow", {"steps": [{"tool": "slack", "args": {"text": "hi"}}]}
    )
    drain(instance, resources)
    assert task_row(db_url, task_id).status == "completed"
    assert json.loads(http_server.received[0].body) == {"text": "hi"}
    [call] = _tool_calls(governance_db, task_id)
    assert "secret" not in json.dumps([call.arguments, call.result])
    assert _artifacts(governance_db, task_id)[0].kind == "message"


def test_slack_without_webhook_blocks_the_task(governance_db, db_url, instance, resources):
    task_id = _add(
        governance_db, "workflow", {"steps": [{"tool": "slack", "args": {"text": "hi"}}]}
    )
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.error_message) == (
        "blocked",
        "step 1 of 1 (slack): SLACK_WEBHOOK_URL is not configured",
    )


def test_code_task_blocks_without_token_and_runs_again_after_retry(
    governance_db, db_url, instance, resources
):
    payload = {"repo": "acme/app", "instruction": "fix it"}
    task_id = _add(governance_db, "code_change", payload)
    drain(instance, resources)
    assert task_row(db_url, task_id).error_message == "GITHUB_TOKEN is not configured"
    settle.retry(governance_db.engine, task_id)
    assert task_row(db_url, task_id).status == "pending"
    assert claim_tasks(governance_db.engine, limit=5, batch_size=5).claimed == 1


def test_approval_gates_execution(governance_db, db_url, instance, resources):
    task_id = _add(
        governance_db,
        "analysis",
        {"sql": "SELECT 1"},
        requires_approval=True,
        approval_reason="costly",
    )
    drain(instance, resources)
    assert task_row(db_url, task_id).status == "waiting_approval"
    settle.approve(governance_db.engine, task_id, "ops")
    drain(instance, resources)
    assert task_row(db_url, task_id).status == "completed"


def test_handler_without_artifact_never_completes(
    governance_db, db_url, instance, resources, monkeypatch
):
    monkeypatch.setitem(
        handlers.HANDLERS, HandlerName.ANALYSIS, lambda ctx: HandlerResult([], "all done!")
    )
    task_id = _add(governance_db, "analysis", {"sql": "SELECT 1"}, max_attempts=1)
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert row.status == "failed"
    assert "no artifact, no completion" in row.error_message
    assert row.verification_status is None


def test_tampered_artifact_is_rejected(governance_db, db_url, instance, resources, monkeypatch):
    original = handlers.HANDLERS[HandlerName.ANALYSIS]

    def tampering(ctx):
        result = original(ctx)
        Path(result.artifacts[0].uri).write_text("[]")
        return result

    monkeypatch.setitem(handlers.HANDLERS, HandlerName.ANALYSIS, tampering)
    task_id = _add(governance_db, "analysis", {"sql": "SELECT 1"})
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("pending", "rejected")
    assert "verification failed" in row.error_message and "sha256" in row.error_message
    assert [a.verified for a in _artifacts(governance_db, task_id)] == [False]


def _env(db, tmp_path):
    return ExecutionEnv(
        engine=db.engine,
        tools=TaskToolsResource(),
        github=GitHubResource(),
        artifacts_root=tmp_path,
        http=httpx.Client(),
    )


def test_run_stopping_mid_batch_releases_the_tasks_it_still_holds(
    governance_db, db_url, tmp_path, monkeypatch
):
    ids = [_add(governance_db, "analysis", {"sql": "SELECT 1"}) for _ in range(3)]
    batch = claim_tasks(governance_db.engine, limit=5, batch_size=5).batches[0]
    calls = []

    def dies_on_second(ctx):
        calls.append(ctx.task_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return handlers.run_query_task(ctx)

    monkeypatch.setitem(handlers.HANDLERS, HandlerName.ANALYSIS, dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        list(run_batch(_env(governance_db, tmp_path), batch.key, "run-1"))
    statuses = [task_row(db_url, i).status for i in batch.task_ids]
    assert statuses == ["completed", "pending", "pending"]
    assert "run run-1 stopped" in task_row(db_url, batch.task_ids[2]).error_message
    assert sorted(ids) == sorted(batch.task_ids)


def test_a_task_is_never_executed_by_two_runs(governance_db, db_url, tmp_path):
    task_id = _add(governance_db, "analysis", {"sql": "SELECT 1"})
    batch = claim_tasks(governance_db.engine, limit=5, batch_size=5).batches[0]
    env = _env(governance_db, tmp_path)
    [outcome] = run_batch(env, batch.key, "run-a")
    assert list(run_batch(env, batch.key, "run-b")) == []
    assert outcome.task_id == task_id and outcome.recorded
    assert task_row(db_url, task_id).assigned_worker == "dagster-run:run-a"


def test_scan_materialises_the_named_asset_and_records_it(
    governance_db, db_url, instance, resources
):
    task_id = _add(governance_db, "scan", {"asset": "task_completion_audit"})
    unknown = _add(governance_db, "scan", {"asset": "no_such_asset"})
    assert drain(instance, resources) == 0, "the executor's sensor leaves scans alone"
    [run] = scan(instance, scan_defs(resources), resources)
    assert run.tags["juggernaut/task_id"] == task_id
    row = task_row(db_url, task_id)
    assert row.status == "completed", row.error_message
    [artifact] = _artifacts(governance_db, task_id)
    assert artifact.kind == "asset_materialization" and artifact.verified
    assert artifact.external_id == run.run_id
    event = instance.get_latest_materialization_event(dg.AssetKey("task_completion_audit"))
    assert event.run_id == artifact.external_id
    millis = int(event.timestamp * 1000)
    assert artifact.uri.endswith(f"/assets/task_completion_audit?view=events&time={millis}")
    assert artifact.details["run_url"].endswith(f"/runs/{artifact.external_id}")
    with governance_db.engine.connect() as conn:
        audited = conn.execute(sa.text("SELECT tasks_audited FROM audit_reports")).scalar()
    assert audited == 2
    assert (
        "unknown asset 'no_such_asset'; scannable assets:"
        in task_row(db_url, unknown).error_message
    )

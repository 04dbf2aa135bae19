"""`scan` tasks: launched as their own asset run by `scan_tasks_sensor`, settled when it ends."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import TaskArtifact
from juggernaut_assets.execution.executor import ExecutionEnv, run_batch
from juggernaut_assets.execution.handlers.scan import NOT_IN_EXECUTOR
from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.execution.scan import (
    SCAN_KEY_TAG,
    TASK_TAG,
    TASK_TYPE_TAG,
    scan_provenance,
)
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.claim import claim_tasks
from juggernaut_assets.tasks.create import add_task
from tests.queue_driver import task_row
from tests.scan_driver import launch, scan, scan_defs, settle, tick

PACKAGE = Path(__file__).resolve().parent.parent / "juggernaut_assets"
PARTS = dg.StaticPartitionsDefinition(["north", "south"])


@dg.asset(check_specs=[dg.AssetCheckSpec("rows_are_valid", asset="checked_scan")])
def checked_scan() -> dg.MaterializeResult:
    """Materialises fine; its ERROR-severity check fails."""
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name="rows_are_valid", passed=False, description="3 negative values"
            )
        ]
    )


@dg.asset(check_specs=[dg.AssetCheckSpec("looks_fresh", asset="warned_scan")])
def warned_scan() -> dg.MaterializeResult:
    """Materialises fine; only a WARN-severity check fails."""
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name="looks_fresh",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description="2 days old",
            )
        ]
    )


@dg.asset
def broken_scan() -> dg.MaterializeResult:
    """Its source is down: the run fails."""
    raise RuntimeError("the source answered 503")


@dg.asset(partitions_def=PARTS)
def regional_scan(context) -> dg.MaterializeResult:
    """A partitioned asset without checks; names the scan task that asked for it, as the
    project's assets do."""
    return dg.MaterializeResult(metadata=scan_provenance(context.run.tags))


TEST_ASSETS = [checked_scan, warned_scan, broken_scan, regional_scan]


@pytest.fixture
def defs(resources) -> dg.Definitions:
    return scan_defs(resources, TEST_ASSETS)


def _add(db, payload, **kwargs) -> str:
    with db.session() as s:
        task, _ = add_task(s, "scan", payload, **kwargs)
    return task.id


def _artifacts(db, task_id):
    with db.session() as s:
        return s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task_id)).all()


def test_scan_task_is_launched_as_its_own_asset_run_tagged_with_the_task(
    governance_db, db_url, instance, resources, defs
):
    task_id = _add(governance_db, {"asset": "regional_scan", "partition": "south"})
    [request] = tick(instance, defs, resources).run_requests
    assert request.asset_selection == [dg.AssetKey("regional_scan")]
    assert request.partition_key == "south"
    assert request.tags[TASK_TAG] == task_id and request.tags[TASK_TYPE_TAG] == "scan"
    row = task_row(db_url, task_id)
    assert (row.status, row.assigned_worker) == ("in_progress", f"dagster-scan:{request.run_key}")
    assert row.attempt_count == 1 and row.started_at is not None

    run = launch(instance, defs, request)
    assert run.status is dg.DagsterRunStatus.SUCCESS and run.tags[TASK_TAG] == task_id
    assert task_row(db_url, task_id).status == "in_progress", "settled only when the run ends"

    settle(instance, defs, resources, run)
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("completed", "verified"), row.error_message
    [artifact] = _artifacts(governance_db, task_id)
    assert artifact.kind == "asset_materialization" and artifact.verified
    assert artifact.external_id == run.run_id
    [produced] = instance.fetch_materializations(dg.AssetKey("regional_scan"), limit=1).records
    millis = int(produced.timestamp * 1000)
    assert artifact.uri == (
        f"http://localhost:3000/assets/regional_scan?view=events&partition=south&time={millis}"
    )
    assert artifact.details["run_url"] == f"http://localhost:3000/runs/{run.run_id}"
    assert artifact.details["asset"] == "regional_scan"
    assert artifact.details["partition"] == "south"
    assert artifact.details["asset_url"] == artifact.uri
    assert produced.asset_materialization.metadata["juggernaut/task"].value == (
        f"http://localhost:3000/assets/task_runs?view=events&partition={task_id}&partitions%5B0%5D={task_id}"
    )
    assert (
        f"in run {run.run_id}" in row.completion_evidence
        and artifact.uri in row.completion_evidence
    )
    event = instance.get_latest_materialization_event(dg.AssetKey("task_runs"))
    assert event.dagster_event.partition == task_id
    metadata = event.asset_materialization.metadata
    assert next(iter(metadata)) == "summary" and metadata["state"].value == "completed"
    assert metadata["artifact_1_asset_materialization"].value == artifact.uri


def test_scan_whose_error_check_fails_is_not_completed(
    governance_db, db_url, instance, resources, defs
):
    task_id = _add(governance_db, {"asset": "checked_scan"}, max_attempts=1)
    [run] = scan(instance, defs, resources)
    assert run.status is dg.DagsterRunStatus.SUCCESS, "a failed check does not fail the run"
    row = task_row(db_url, task_id)
    assert row.status == "failed" and row.verification_status == "rejected"
    assert "check rows_are_valid failed: 3 negative values (ERROR)" in row.error_message
    assert row.completed_at is not None and row.completion_evidence is None
    [artifact] = _artifacts(governance_db, task_id)
    assert not artifact.verified


def test_scan_with_only_warn_check_failures_completes_and_lists_them(
    governance_db, db_url, instance, resources, defs
):
    task_id = _add(governance_db, {"asset": "warned_scan"})
    scan(instance, defs, resources)
    row = task_row(db_url, task_id)
    assert row.status == "completed", row.error_message
    assert "check looks_fresh failed: 2 days old (WARN)" in row.completion_evidence
    [artifact] = _artifacts(governance_db, task_id)
    assert artifact.verified
    assert artifact.details["warnings"] == ["check looks_fresh failed: 2 days old (WARN)"]


def test_failed_scan_run_sends_the_task_back_with_the_reason(
    governance_db, db_url, instance, resources, defs
):
    retried = _add(governance_db, {"asset": "broken_scan"})
    last_try = _add(governance_db, {"asset": "broken_scan"}, max_attempts=1)
    runs = scan(instance, defs, resources)
    assert {r.status for r in runs} == {dg.DagsterRunStatus.FAILURE}
    row = task_row(db_url, retried)
    assert row.status == "pending" and row.next_retry_at is not None
    assert row.error_message.startswith("attempt 1 of 3 did not finish: scan run ")
    assert "ended (FAILURE): broken_scan: RuntimeError: the source answered 503" in (
        row.error_message
    )
    row = task_row(db_url, last_try)
    assert row.status == "failed"
    assert row.error_message.startswith("gave up after 1 attempt(s): scan run ")
    assert _artifacts(governance_db, retried) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "payload is missing required field(s): asset"),
        ({"asset": "no_such_asset"}, "unknown asset 'no_such_asset'; scannable assets: "),
        ({"asset": "task_runs"}, "unknown asset 'task_runs'"),
        ({"asset": "checked_scan", "partition": "north"}, "asset checked_scan is not partitioned"),
        ({"asset": "regional_scan", "partition": "east"}, "'east' is not a partition of"),
    ],
)
def test_bad_scan_payload_fails_at_claim_without_a_run(
    governance_db, db_url, instance, resources, defs, payload, message
):
    task_id = _add(governance_db, payload)
    data = tick(instance, defs, resources)
    assert not data.run_requests
    row = task_row(db_url, task_id)
    assert row.status == "failed" and message in row.error_message
    assert row.failure_reason == row.error_message
    event = instance.fetch_observations(dg.AssetKey("task_runs"), limit=1).records[0]
    assert event.partition_key == task_id
    assert instance.get_runs() == []


def test_scan_payload_that_is_not_json_fails_only_its_task(
    governance_db, db_url, instance, resources, defs
):
    bad = _add(governance_db, {"asset": "warned_scan"})
    good = _add(governance_db, {"asset": "warned_scan"})
    with governance_db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE governance_tasks SET payload = :p WHERE id = :id"),
            {"p": '["warned_scan"]', "id": bad},
        )
    [request] = tick(instance, defs, resources).run_requests
    assert request.tags[TASK_TAG] == good
    assert task_row(db_url, bad).error_message == "payload must be a JSON object, got list"


def test_lost_scan_run_request_is_made_again_under_the_same_run_key(
    governance_db, db_url, instance, resources, defs
):
    task_id = _add(governance_db, {"asset": "warned_scan"})
    [lost] = tick(instance, defs, resources).run_requests
    data = tick(instance, defs, resources)
    [again] = data.run_requests
    assert (again.run_key, again.tags[SCAN_KEY_TAG]) == (lost.run_key, lost.run_key)
    assert again.tags[TASK_TAG] == task_id
    assert task_row(db_url, task_id).attempt_count == 1, "a relaunch is the same attempt"
    launch(instance, defs, again)
    data = tick(instance, defs, resources)
    assert not data.run_requests and "1 scan task(s) settled" in data.skip_message
    assert task_row(db_url, task_id).status == "completed"


def test_scan_sensor_settles_runs_whose_status_event_was_missed(
    governance_db, db_url, instance, resources, defs
):
    task_id = _add(governance_db, {"asset": "warned_scan"})
    [request] = tick(instance, defs, resources).run_requests
    run = launch(instance, defs, request)
    tick(instance, defs, resources)
    assert task_row(db_url, task_id).status == "completed"
    settle(instance, defs, resources, run)
    assert len(_artifacts(governance_db, task_id)) == 1, "settling twice records nothing twice"
    assert len(instance.fetch_materializations(dg.AssetKey("task_runs"), limit=10).records) == 1


def test_materialization_verifier_rejects_a_partition_the_run_did_not_materialise(
    governance_db, instance, resources, defs
):
    _add(governance_db, {"asset": "regional_scan", "partition": "north"})
    [run] = scan(instance, defs, resources)

    def problems(**details) -> list[str]:
        artifact = Artifact(ArtifactKind.ASSET_MATERIALIZATION, external_id=run.run_id)
        artifact.details = details
        return verify_artifacts([artifact], VerifyEnv(governance_db.engine, instance))

    assert problems(asset="regional_scan", partition="north") == []
    [wrong] = problems(asset="regional_scan", partition="south")
    assert wrong.endswith(f"{run.run_id} has no materialization of regional_scan partition south")
    [other] = problems(asset="warned_scan", partition=None)
    assert "has no materialization of warned_scan" in other


def test_scan_task_reaching_the_executor_goes_back_to_the_queue_without_materialising(
    governance_db, db_url, instance, tmp_path
):
    task_id = _add(governance_db, {"asset": "task_completion_audit"})
    [batch] = claim_tasks(governance_db.engine, limit=5, batch_size=5).batches
    env = ExecutionEnv(
        engine=governance_db.engine,
        tools=TaskToolsResource(),
        github=GitHubResource(),
        artifacts_root=tmp_path,
        http=httpx.Client(),
        instance=instance,
    )
    [outcome] = run_batch(env, batch.key, "run-a")
    assert outcome.ending == "retry" and outcome.artifacts == []
    row = task_row(db_url, task_id)
    assert row.status == "pending" and NOT_IN_EXECUTOR in row.error_message
    assert instance.get_runs() == []


def _imports_definitions(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "juggernaut_assets.definitions":
            return True
        if isinstance(node, ast.Import) and any(
            alias.name == "juggernaut_assets.definitions" for alias in node.names
        ):
            return True
    return False


def test_no_module_of_the_package_imports_definitions():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "definitions.py" and _imports_definitions(path)
    ]
    assert offenders == []
    code = (
        "import sys\n"
        "import juggernaut_assets.execution.executor, juggernaut_assets.execution.scan\n"
        "import juggernaut_assets.execution.handlers, juggernaut_assets.jobs.execute_tasks\n"
        "import juggernaut_assets.sensors.scan_tasks, juggernaut_assets.sensors.scan_runs\n"
        "assert 'juggernaut_assets.definitions' not in sys.modules, 'definitions imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)

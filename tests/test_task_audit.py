from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import sqlalchemy as sa

from juggernaut_assets.assets.task_audit import TaskAuditConfig, build_audit, task_completion_audit
from juggernaut_assets.db.models import AuditReport, GovernanceTask, TaskArtifact
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.tasks.create import add_task

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _tasks(rows: list[dict]) -> pl.DataFrame:
    base = {
        "task_type": "analysis",
        "status": "completed",
        "verification_status": "verified",
        "error_message": None,
        "has_dependencies": False,
        "attempt_count": 1,
        "created_at": datetime(2026, 11, 24, 10, 0),
        "state_since": datetime(2026, 11, 24, 10, 0),
        "artifacts": 1,
        "verified_artifacts": 1,
    }
    return pl.DataFrame([{**base, "task_id": str(i), **r} for i, r in enumerate(rows)])


def test_audit_names_each_problem():
    frame = _tasks(
        [
            {},
            {"artifacts": 0, "verified_artifacts": 0},
            {"artifacts": 2, "verified_artifacts": 1},
            {"status": "in_progress", "state_since": datetime(2026, 11, 24, 6, 0)},
            {"status": "in_progress", "state_since": datetime(2026, 11, 24, 11, 30)},
            {"status": "pending", "task_type": "content_creation"},
            {
                "status": "blocked",
                "has_dependencies": True,
                "error_message": "dependency x is failed",
            },
            {"status": "blocked", "error_message": "GITHUB_TOKEN is not configured"},
            {"status": "failed", "error_message": None},
            {"status": "awaiting_pr_merge", "state_since": datetime(2026, 11, 1)},
        ]
    )
    audit = build_audit(frame, NOW, TaskAuditConfig())
    findings = dict(zip(audit["task_id"], audit["finding"], strict=True))
    assert findings == {
        "0": "ok",
        "1": "completed_without_artifact",
        "2": "completed_unverified",
        "3": "stuck",
        "4": "ok",
        "5": "no_handler",
        "6": "blocked_dependency",
        "7": "blocked",
        "8": "failed_without_reason",
        "9": "awaiting_pr_stale",
    }
    assert audit.filter(pl.col("task_id") == "3")["detail"][0] == "in progress for 6.0 h"
    assert audit.filter(pl.col("task_id") == "0")["age_hours"][0] == 2.0


def test_audit_asset_finds_fake_completion_and_records_report(governance_db, db_url, tmp_path):
    with governance_db.session() as s:
        fake, _ = add_task(s, "analysis", {"sql": "SELECT 1"})
        s.flush()
        s.execute(
            sa.update(GovernanceTask)
            .where(GovernanceTask.id == fake.id)
            .values(status="completed", completed_at=NOW - timedelta(hours=1))
        )
    from juggernaut_assets.resources.polars_io import PolarsParquetIOManager

    result = dg.materialize(
        [task_completion_audit],
        resources={
            "governance_db": governance_db,
            "io_manager": PolarsParquetIOManager(base_path=str(tmp_path / "assets")),
        },
        run_config={"ops": {"task_completion_audit": {"config": {"reset_fake_completions": True}}}},
        raise_on_error=False,
    )
    assert not result.success  # the blocking ERROR check failed: the run says so
    audit = result.output_for_node("task_completion_audit")
    assert audit.filter(pl.col("task_id") == fake.id)["finding"][0] == "completed_without_artifact"
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed
    with governance_db.session() as s:
        report = s.scalars(sa.select(AuditReport)).one()
        task = s.get(GovernanceTask, fake.id)
    assert (report.tasks_audited, report.fake_completions_found, report.fake_completions_reset) == (
        1,
        1,
        1,
    )
    assert task.status == "pending"
    assert task.verification_status == "rejected"


def _materialize_audit(governance_db, tmp_path, *, reset: bool = True, raise_on_error=False):
    from juggernaut_assets.resources.polars_io import PolarsParquetIOManager

    return dg.materialize(
        [task_completion_audit],
        resources={
            "governance_db": governance_db,
            "io_manager": PolarsParquetIOManager(base_path=str(tmp_path / "assets")),
        },
        run_config={
            "ops": {"task_completion_audit": {"config": {"reset_fake_completions": reset}}}
        },
        raise_on_error=raise_on_error,
    )


def _completed_task(governance_db, attempts: int, artifacts: list[dict]) -> str:
    """A completed, verified task after `attempts` attempts, with these artifact rows."""
    started = NOW - timedelta(minutes=10)
    with governance_db.session() as s:
        task, _ = add_task(s, "analysis", {"sql": "SELECT 1"})
        task.status = "completed"
        task.verification_status = "verified"
        task.attempt_count = attempts
        task.started_at = started
        task.completed_at = NOW - timedelta(minutes=5)
        s.flush()
        for art in artifacts:
            s.add(
                TaskArtifact(
                    task_id=task.id,
                    kind="query_result",
                    uri=f"file:///artifacts/{task.id}/{art.get('attempt')}.json",
                    created_at=art.get("created_at", started + timedelta(minutes=1)),
                    **{k: v for k, v in art.items() if k != "created_at"},
                )
            )
        return task.id


def _status(governance_db, task_id: str) -> str:
    with governance_db.session() as s:
        return s.get(GovernanceTask, task_id).status


def test_audit_judges_only_the_completing_attempt(governance_db, tmp_path):
    rejected_then_done = _completed_task(
        governance_db,
        attempts=2,
        artifacts=[
            {"attempt": 1, "verified": False, "created_at": NOW - timedelta(minutes=20)},
            {"attempt": 2, "verified": True},
        ],
    )
    done_then_faked = _completed_task(
        governance_db,
        attempts=2,
        artifacts=[{"attempt": 1, "verified": True, "created_at": NOW - timedelta(minutes=20)}],
    )
    unverified_last = _completed_task(
        governance_db, attempts=2, artifacts=[{"attempt": 2, "verified": False}]
    )
    retried_by_operator = _completed_task(  # `tasks retry` restarted the count: an older attempt 1
        governance_db,
        attempts=1,
        artifacts=[
            {"attempt": 1, "verified": False, "created_at": NOW - timedelta(hours=3)},
            {"attempt": 1, "verified": True},
        ],
    )
    legacy_history = _completed_task(  # rows written before `attempt` existed: all are judged
        governance_db,
        attempts=2,
        artifacts=[{"attempt": None, "verified": False}, {"attempt": None, "verified": True}],
    )
    legacy_then_numbered = _completed_task(
        governance_db,
        attempts=2,
        artifacts=[{"attempt": None, "verified": False}, {"attempt": 2, "verified": True}],
    )
    result = _materialize_audit(governance_db, tmp_path)
    audit = result.output_for_node("task_completion_audit")
    findings = dict(zip(audit["task_id"], audit["finding"], strict=True))
    assert findings == {
        rejected_then_done: "ok",
        done_then_faked: "completed_without_artifact",
        unverified_last: "completed_unverified",
        retried_by_operator: "ok",
        legacy_history: "completed_unverified",
        legacy_then_numbered: "ok",
    }
    row = audit.filter(pl.col("task_id") == unverified_last).row(0, named=True)
    assert (row["artifacts"], row["verified_artifacts"], row["attempt_count"]) == (1, 0, 2)
    assert row["detail"] == (
        "completed with 0/1 verified artifact(s) of attempt 2, verification_status=verified"
    )
    statuses = {task_id: _status(governance_db, task_id) for task_id in findings}
    assert statuses == {
        task_id: "completed" if finding == "ok" else "pending"
        for task_id, finding in findings.items()
    }
    with governance_db.session() as s:
        report = s.scalars(sa.select(AuditReport)).one()
    assert (report.fake_completions_found, report.fake_completions_reset) == (3, 3)


def test_audit_reset_is_rolled_back_when_its_report_cannot_be_written(
    governance_db, db_url, tmp_path
):
    fake = _completed_task(governance_db, attempts=1, artifacts=[])
    engine = governance_db.engine
    with engine.begin() as conn:  # the report table is unavailable (as with a missing grant)
        conn.execute(sa.text("ALTER TABLE audit_reports RENAME TO audit_reports_away"))
    try:
        result = _materialize_audit(governance_db, tmp_path, raise_on_error=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE audit_reports_away RENAME TO audit_reports"))
    assert not result.success
    with governance_db.session() as s:
        task = s.get(GovernanceTask, fake)
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditReport)) == 0
    assert (task.status, task.verification_status, task.error_message) == (
        "completed",
        "verified",
        None,
    )


def test_audit_of_an_empty_queue_reports_zero_tasks(governance_db, tmp_path):
    result = _materialize_audit(governance_db, tmp_path)
    audit = result.output_for_node("task_completion_audit")
    assert audit.height == 0
    assert set(audit.columns) >= {
        "task_id",
        "task_type",
        "status",
        "artifacts",
        "verified_artifacts",
        "finding",
        "detail",
        "age_hours",
    }
    check = result.get_asset_check_evaluations()[0]
    assert check.passed
    with governance_db.session() as s:
        report = s.scalars(sa.select(AuditReport)).one()
    assert (report.tasks_audited, report.fake_completions_found, report.fake_completions_reset) == (
        0,
        0,
        0,
    )


def test_no_fake_completions_check_is_described():
    spec = next(iter(task_completion_audit.check_specs))
    assert "verified" in (spec.description or "")


def test_fake_completion_reset_at_its_last_attempt_runs_again(governance_db, tmp_path):
    from juggernaut_assets.tasks.claim import claim_tasks

    fake = _completed_task(governance_db, attempts=3, artifacts=[])
    _materialize_audit(governance_db, tmp_path)
    with governance_db.session() as s:
        task = s.get(GovernanceTask, fake)
        assert (task.status, task.attempt_count) == ("pending", 0)
    claimed = claim_tasks(governance_db.engine, limit=5, batch_size=5)
    assert [t for b in claimed.batches for t in b.task_ids] == [fake]


def _mixed_tasks(governance_db) -> dict[str, str]:
    """A verified completion, a fake one, a failed task without reason and a blocked one."""
    done = _completed_task(governance_db, attempts=1, artifacts=[{"attempt": 1, "verified": True}])
    fake = _completed_task(governance_db, attempts=1, artifacts=[])
    with governance_db.session() as s:
        failed, _ = add_task(s, "analysis", {"sql": "SELECT 1"}, title="Count the widgets")
        blocked, _ = add_task(s, "code", {"repo": "o/r"}, title="Fix | the build")
        s.flush()
        failed.status = "failed"
        blocked.status = "blocked"
        blocked.error_message = "GITHUB_TOKEN is not configured"
        blocked.depends_on = []
        return {"done": done, "fake": fake, "failed": failed.id, "blocked": blocked.id}


def test_postgres_copy_and_row_reader_load_the_same_tasks(governance_db, db_url):
    from juggernaut_assets.assets.task_audit import _copy_tasks, _read_tasks, load_tasks

    _mixed_tasks(governance_db)
    with governance_db.engine.connect() as conn:
        loaded = load_tasks(conn).sort("task_id")
        read = _read_tasks(conn).select(loaded.columns).cast(loaded.schema).sort("task_id")
        assert loaded.equals(read)
        if conn.dialect.name == "postgresql":  # the COPY path is the one load_tasks took
            copied = _copy_tasks(conn).select(loaded.columns).cast(loaded.schema)
            assert copied.sort("task_id").equals(read)
    assert loaded.height == 4
    assert loaded["created_at"].dtype == pl.Datetime("us")
    assert loaded["has_dependencies"].to_list() == [False] * 4


def test_audit_metadata_shows_problems_readably_and_the_check_blocks(governance_db, tmp_path):
    ids = _mixed_tasks(governance_db)
    result = _materialize_audit(governance_db, tmp_path, reset=False)
    audit = result.output_for_node("task_completion_audit")
    assert audit["finding"].to_list() == [
        "completed_without_artifact",
        "blocked",
        "failed_without_reason",
        "ok",
    ]  # worst first
    [materialization] = result.asset_materializations_for_node("task_completion_audit")
    metadata = materialization.metadata
    problems = metadata["problems"].value
    assert problems.splitlines()[0] == "| task | type | finding | detail |"
    assert "| Count the widgets | analysis | failed_without_reason |" in problems
    assert "| Fix \\| the build | code | blocked | GITHUB_TOKEN is not configured |" in problems
    assert ids["done"][:8] not in problems
    assert "| completed_without_artifact | 1 |" in metadata["findings"].value
    assert (metadata["tasks_audited"].value, metadata["problem_tasks"].value) == (4, 3)
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert ids["fake"] in check.metadata["examples"].text
    assert check.description.startswith("1 of 4 tasks completed without verified proof")
    assert not result.success  # a failed blocking check fails the run: downstream waits
    spec = next(iter(task_completion_audit.check_specs))
    assert spec.blocking


def test_audit_runs_on_a_schedule_that_starts_running():
    from juggernaut_assets.assets.task_audit import (
        task_completion_audit_job,
        task_completion_audit_schedule,
    )

    defs = dg.Definitions(
        assets=[task_completion_audit],
        jobs=[task_completion_audit_job],
        schedules=[task_completion_audit_schedule],
        resources={"governance_db": GovernanceDB(url="sqlite://")},
    )
    job = defs.resolve_job_def(task_completion_audit_job.name)
    assert job.asset_layer.executable_asset_keys == {dg.AssetKey("task_completion_audit")}
    assert task_completion_audit_schedule.cron_schedule == "*/15 * * * *"
    assert task_completion_audit_schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def _finished_batch(instance, db_url, batch_key: str = "nothing") -> dg.DagsterRun:
    from juggernaut_assets.jobs.execute_tasks import execute_tasks
    from tests.conftest import platform_resources

    result = execute_tasks.execute_in_process(
        run_config={"ops": {"execute_task_batch": {"config": {"batch_key": batch_key}}}},
        resources=platform_resources(db_url),
        instance=instance,
    )
    return instance.get_run_by_id(result.run_id)


def _evaluate_after_run(instance, run: dg.DagsterRun):
    from juggernaut_assets.sensors.audit_refresh import task_audit_after_runs_sensor

    [*_, record] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    context = dg.build_run_status_sensor_context(
        sensor_name=task_audit_after_runs_sensor.name,
        dagster_event=record.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
    )
    return task_audit_after_runs_sensor(context)


def _audit_run(instance, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    from juggernaut_assets.assets.task_audit import AUDIT_JOB

    return instance.add_run(
        dg.DagsterRun(job_name=AUDIT_JOB, run_id=str(uuid.uuid4()), status=status)
    )


def test_audit_is_requested_after_a_batch_that_settled_tasks(db_url, instance):
    from juggernaut_assets.sensors.audit_refresh import AFTER_RUN_TAG

    run = _finished_batch(instance, db_url)
    instance.add_run_tags(run.run_id, {"juggernaut/completed": "2", "juggernaut/failed": "1"})
    request = _evaluate_after_run(instance, instance.get_run_by_id(run.run_id))
    assert isinstance(request, dg.RunRequest)
    assert request.tags[AFTER_RUN_TAG] == run.run_id


def test_audit_after_runs_skips_with_a_reason(db_url, instance):
    empty = _finished_batch(instance, db_url)  # tagged with zero counts by the batch op
    skip = _evaluate_after_run(instance, empty)
    assert isinstance(skip, dg.SkipReason)
    assert "settled no task" in skip.skip_message

    busy = _finished_batch(instance, db_url, "other")
    instance.add_run_tags(busy.run_id, {"juggernaut/completed": "1"})
    busy = instance.get_run_by_id(busy.run_id)
    queued = _audit_run(instance, dg.DagsterRunStatus.NOT_STARTED)
    skip = _evaluate_after_run(instance, busy)
    assert isinstance(skip, dg.SkipReason)
    assert f"audit run {queued.run_id[:8]} has not started yet" in skip.skip_message

    instance.report_run_canceled(queued)
    recent = _audit_run(instance, dg.DagsterRunStatus.SUCCESS)
    skip = _evaluate_after_run(instance, busy)
    assert isinstance(skip, dg.SkipReason)
    assert f"last audit run {recent.run_id[:8]} started at" in skip.skip_message
    assert "15-minute schedule" in skip.skip_message

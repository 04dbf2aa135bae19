from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import sqlalchemy as sa

from juggernaut_assets.assets.task_audit import TaskAuditConfig, build_audit, task_completion_audit
from juggernaut_assets.db.models import AuditReport, GovernanceTask, TaskArtifact
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
    )
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


def _materialize_audit(governance_db, tmp_path, *, reset: bool = True, raise_on_error=True):
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

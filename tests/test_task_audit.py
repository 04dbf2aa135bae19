from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import sqlalchemy as sa

from juggernaut_assets.assets.task_audit import TaskAuditConfig, build_audit, task_completion_audit
from juggernaut_assets.db.models import AuditReport, GovernanceTask
from juggernaut_assets.tasks.create import add_task

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _tasks(rows: list[dict]) -> pl.DataFrame:
    base = {
        "task_type": "analysis",
        "status": "completed",
        "verification_status": "verified",
        "error_message": None,
        "has_dependencies": False,
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

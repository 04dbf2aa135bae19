"""`task_completion_audit`: every task checked against its proof of work.

Which artifacts are judged: those of the task's current attempt, which for a completed task
is the attempt that completed it. An artifact belongs to it when its `attempt` equals the
task's `attempt_count` and it was created no earlier than the task's `started_at` (when that
attempt was taken: `juggernaut tasks retry` restarts the numbering, so an earlier round's
attempt 1 is told apart by time; a null `started_at` or `created_at` does not exclude a row).
Artifacts of earlier attempts are ignored, so a task whose first attempt was rejected and whose
second attempt completed with verified proof is `ok`, and is never reset. Rows with a null
`attempt` were written before the column existed: when none of a task's rows carries an
attempt number they are all judged, as before; once any row of the task carries one, the
null rows are history and are ignored. A completed task with no row of its current attempt
is `completed_without_artifact`.

The reset of fake completions (with `reset_fake_completions`) and the `audit_reports` row are
written in one transaction: either both are recorded or neither is.
"""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
import sqlalchemy as sa

from juggernaut_assets.db.enums import TaskStatus, VerificationStatus
from juggernaut_assets.db.models import AuditReport, GovernanceTask, TaskArtifact, new_id
from juggernaut_assets.execution.registry import is_executable
from juggernaut_assets.lib.audit_rules import FAKE_COMPLETIONS, Finding, audit_tasks
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.polars_io import markdown_table

NO_FAKE_COMPLETIONS = "no_fake_completions"
REPORT_TYPE = "task_completion_audit"
RESET_MESSAGE = "reset by the audit: completed without verified artifacts"
T = GovernanceTask.__table__
A = TaskArtifact.__table__
TASK_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "task_type": pl.String(),
    "status": pl.String(),
    "verification_status": pl.String(),
    "error_message": pl.String(),
    "has_dependencies": pl.Boolean(),
    "attempt_count": pl.Int64(),
    "created_at": pl.Datetime("us"),
    "state_since": pl.Datetime("us"),
    "artifacts": pl.Int64(),
    "verified_artifacts": pl.Int64(),
}


class TaskAuditConfig(dg.Config):
    stuck_after_hours: float = 2.0
    pr_stale_after_hours: float = 168.0
    reset_fake_completions: bool = False
    """Put fake completions back in the queue (`pending`, verification `rejected`)."""


def _judged_artifact() -> sa.ColumnElement[bool]:
    """Whether an artifact row belongs to its task's current attempt (see the module doc)."""
    numbered = A.alias("numbered")
    task_has_numbered_rows = sa.exists().where(
        numbered.c.task_id == T.c.id, numbered.c.attempt.is_not(None)
    )
    same_round = sa.or_(
        T.c.started_at.is_(None), A.c.created_at.is_(None), A.c.created_at >= T.c.started_at
    )
    return sa.or_(
        sa.and_(A.c.attempt == T.c.attempt_count, same_round),
        sa.and_(A.c.attempt.is_(None), ~task_has_numbered_rows),
    )


def load_tasks(conn: sa.Connection) -> pl.DataFrame:
    has_deps = sa.case(
        (
            sa.or_(T.c.depends_on.is_(None), sa.cast(T.c.depends_on, sa.Text).in_(["[]", "null"])),
            False,
        ),
        else_=True,
    )
    query = (
        sa.select(
            T.c.id.label("task_id"),
            T.c.task_type,
            T.c.status,
            T.c.verification_status,
            T.c.error_message,
            has_deps.label("has_dependencies"),
            T.c.attempt_count,
            T.c.created_at,
            sa.func.coalesce(T.c.started_at, T.c.assigned_at, T.c.updated_at).label("state_since"),
            sa.func.count(A.c.id).label("artifacts"),
            sa.func.coalesce(sa.func.sum(sa.case((A.c.verified, 1), else_=0)), 0).label(
                "verified_artifacts"
            ),
        )
        .select_from(T.outerjoin(A, sa.and_(A.c.task_id == T.c.id, _judged_artifact())))
        .group_by(T.c.id)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["task_id"] = str(row["task_id"])
        for col in ("created_at", "state_since"):
            if isinstance(row[col], datetime) and row[col].tzinfo is not None:
                row[col] = row[col].astimezone(UTC).replace(tzinfo=None)
    return pl.DataFrame(rows, schema=TASK_SCHEMA)


def build_audit(tasks: pl.DataFrame, now: datetime, config: TaskAuditConfig) -> pl.DataFrame:
    """The audit frame from the loaded tasks (pure: no I/O)."""
    now_naive = now.astimezone(UTC).replace(tzinfo=None)
    types = tasks["task_type"].fill_null("").unique().to_list()
    executable_types = [t for t in types if is_executable(t)]
    enriched = tasks.with_columns(
        executable=pl.col("task_type").fill_null("").is_in(executable_types),
        age_hours=(pl.lit(now_naive) - pl.col("created_at")).dt.total_seconds() / 3600,
        hours_in_state=(pl.lit(now_naive) - pl.col("state_since")).dt.total_seconds() / 3600,
    )
    audited = audit_tasks(
        enriched,
        stuck_after_hours=config.stuck_after_hours,
        pr_stale_after_hours=config.pr_stale_after_hours,
    )
    return audited.select(
        "task_id",
        "task_type",
        "status",
        "artifacts",
        "verified_artifacts",
        "finding",
        "detail",
        pl.col("age_hours").round(2),
        "verification_status",
        "attempt_count",
    ).sort("finding", "task_id")


def _reset_fake_completions(conn: sa.Connection, task_ids: list[str]) -> int:
    """Fake completions go back to the queue with a fresh attempt budget (as `tasks retry`
    does): the attempts they used produced no proof, and the claim never starts a task that
    has none left."""
    if not task_ids:
        return 0
    return conn.execute(
        T.update()
        .where(T.c.id.in_(task_ids), T.c.status == TaskStatus.COMPLETED.value)
        .values(
            status=TaskStatus.PENDING.value,
            verification_status=VerificationStatus.REJECTED.value,
            error_message=RESET_MESSAGE,
            completed_at=None,
            attempt_count=0,
            next_retry_at=None,
        )
    ).rowcount


@dg.asset(
    group_name="tasks",
    check_specs=[
        dg.AssetCheckSpec(
            NO_FAKE_COMPLETIONS,
            asset="task_completion_audit",
            description=(
                "No task is `completed` without verified proof: every completed task has at "
                "least one artifact of its completing attempt, all of them verified, and "
                "`verification_status = verified`. Fails with the number of fake completions "
                "(`completed_without_artifact`, `completed_unverified`) and examples."
            ),
        )
    ],
)
def task_completion_audit(
    context: dg.AssetExecutionContext, config: TaskAuditConfig, governance_db: GovernanceDB
):
    """One row per task in `governance_tasks` with its audit finding.

    Columns: `task_id`, `task_type`, `status`; `artifacts` / `verified_artifacts` (rows in
    `task_artifacts` of the task's current attempt, i.e. the completing attempt of a completed
    task; all rows for history written before artifacts carried an attempt number; all /
    verified); `finding` (`ok` or a named problem: `completed_without_artifact`,
    `completed_unverified`, `stuck`, `no_handler`, `blocked_dependency`, `blocked`,
    `awaiting_pr_stale`, `failed_without_reason`); `detail` (why, for a person); `age_hours`
    (since creation); `verification_status`; `attempt_count` (the attempt judged).
    Each run also writes a row to production's `audit_reports`; with
    `reset_fake_completions`, fake completions go back to the queue, in the same transaction
    as that row. An empty `governance_tasks` gives an empty frame and a passing check.
    """
    now = datetime.now(UTC)
    with governance_db.engine.connect() as conn:
        audit = build_audit(load_tasks(conn), now, config)
    fake_ids = audit.filter(pl.col("finding").is_in([f.value for f in FAKE_COMPLETIONS]))[
        "task_id"
    ].to_list()
    counts = dict(audit.group_by("finding").len().iter_rows())
    with governance_db.engine.begin() as conn:
        reset = _reset_fake_completions(conn, fake_ids) if config.reset_fake_completions else 0
        conn.execute(
            sa.insert(AuditReport.__table__).values(
                id=new_id(),
                report_type=REPORT_TYPE,
                report_date=now,
                tasks_audited=audit.height,
                fake_completions_found=len(fake_ids),
                fake_completions_reset=reset,
                details={"findings": counts, "dagster_run_id": context.run.run_id},
            )
        )
    problems = audit.filter(pl.col("finding") != Finding.OK.value)
    yield dg.Output(
        audit,
        metadata={
            "problems": dg.MetadataValue.md(markdown_table(problems.head(20))),
            "tasks_audited": audit.height,
            "fake_completions": len(fake_ids),
            "fake_completions_reset": reset,
            **{f"finding/{name}": int(n) for name, n in sorted(counts.items())},
        },
    )
    yield dg.AssetCheckResult(
        check_name=NO_FAKE_COMPLETIONS,
        passed=not fake_ids,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"fake_completions": len(fake_ids), "examples": ", ".join(fake_ids[:10])},
    )

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

How it reads: one aggregated query (tasks left-joined to their per-task artifact counts) goes
straight into a polars frame: on PostgreSQL with psycopg2 as `COPY (query) TO STDOUT` CSV parsed
by `pl.read_csv`, elsewhere (SQLite, other drivers) by `pl.read_database` in batches; the rules
(`lib/audit_rules.py`) are polars expressions over that frame. `benchmarks/audit.py` measures
1,000,000 tasks.

The reset of fake completions (with `reset_fake_completions`) and the `audit_reports` row are
written in one transaction: either both are recorded or neither is. The check
`no_fake_completions` is ERROR severity and blocking: when it fails, the run fails after the
audit's value, materialisation and check result are recorded, and assets downstream wait.
"""

import io
from datetime import UTC, datetime

import dagster as dg
import polars as pl
import sqlalchemy as sa

from juggernaut_assets.assets.governance import OWNERS, governance_tasks, task_artifacts
from juggernaut_assets.db.enums import TaskStatus, VerificationStatus
from juggernaut_assets.db.models import AuditReport, GovernanceTask, TaskArtifact, new_id
from juggernaut_assets.execution.registry import is_executable
from juggernaut_assets.lib.audit_rules import FAKE_COMPLETIONS, REPORT_ORDER, Finding, audit_tasks
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.polars_io import Column, documented_columns, markdown_table

NO_FAKE_COMPLETIONS = "no_fake_completions"
REPORT_TYPE = "task_completion_audit"
AUDIT_JOB = "task_completion_audit_job"
AUDIT_CRON = "*/15 * * * *"
PROBLEMS_SHOWN = 20
RESET_MESSAGE = "reset by the audit: completed without verified artifacts"
BATCH_ROWS = 100_000
"""Rows polars reads per batch: bounds the driver's row buffer, not the result."""
T = GovernanceTask.__table__
A = TaskArtifact.__table__
TASK_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "task_type": pl.String(),
    "title": pl.String(),
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

FINDINGS = ", ".join(f.value for f in Finding if f is not Finding.OK)
AUDIT_COLUMNS: dict[str, Column] = {
    "task_id": (pl.String(), "The task's id in governance_tasks."),
    "task_type": (pl.String(), "Its type (which handler carries it out)."),
    "title": (pl.String(), "Its title."),
    "status": (pl.String(), "Its status when audited."),
    "artifacts": (
        pl.Int64(),
        "Rows in task_artifacts of the task's current attempt (for a completed task, the "
        "attempt that completed it; all rows for history written before artifacts carried "
        "an attempt number).",
    ),
    "verified_artifacts": (pl.Int64(), "How many of those were verified."),
    "finding": (pl.String(), f"ok, or the problem found: {FINDINGS}."),
    "detail": (pl.String(), "Why, in words for a person."),
    "age_hours": (pl.Float64(), "Hours since the task was created (2 decimals)."),
    "verification_status": (pl.String(), "The task's verification status."),
    "attempt_count": (pl.Int64(), "The attempt judged."),
}
"""The audit's columns, in their order: `build_audit` selects exactly these."""


class TaskAuditConfig(dg.Config):
    stuck_after_hours: float = 2.0
    pr_stale_after_hours: float = 168.0
    reset_fake_completions: bool = False
    """Put fake completions back in the queue (`pending`, verification `rejected`)."""


def _artifact_counts() -> sa.Subquery:
    """Per task: rows of its current attempt (all / verified), and all rows, for the rule in
    the module doc. One pass over `task_artifacts` joined to their tasks, grouped by task."""
    same_round = sa.or_(
        T.c.started_at.is_(None), A.c.created_at.is_(None), A.c.created_at >= T.c.started_at
    )
    judged = sa.and_(A.c.attempt == T.c.attempt_count, same_round)
    verified = sa.case((A.c.verified, 1), else_=0)
    return (
        sa.select(
            A.c.task_id,
            sa.func.count(A.c.attempt).label("numbered"),
            sa.func.sum(sa.case((judged, 1), else_=0)).label("judged"),
            sa.func.sum(sa.case((sa.and_(judged, A.c.verified), 1), else_=0)).label(
                "judged_verified"
            ),
            sa.func.count(A.c.id).label("all_rows"),
            sa.func.sum(verified).label("all_verified"),
        )
        .select_from(A.join(T, T.c.id == A.c.task_id))
        .group_by(A.c.task_id)
        .subquery("artifact_counts")
    )


def tasks_query(*, for_copy: bool = False) -> sa.Select:
    """One row per task with its judged artifact counts: one aggregated query.

    `for_copy` (PostgreSQL `COPY … TO STDOUT`, which writes text): timestamps as microseconds
    since the epoch, so no time zone or format is parsed back.
    """
    counts = _artifact_counts()

    def stamp(column: sa.ColumnElement) -> sa.ColumnElement:
        if not for_copy:
            return column
        return sa.cast(sa.func.round(sa.extract("epoch", column) * 1_000_000), sa.BigInteger)

    numbered = counts.c.numbered > 0

    def judged(current: sa.ColumnElement, legacy: sa.ColumnElement) -> sa.ColumnElement:
        return sa.func.coalesce(sa.case((numbered, current), else_=legacy), 0)

    has_deps = sa.case(
        (
            sa.or_(T.c.depends_on.is_(None), sa.cast(T.c.depends_on, sa.Text).in_(["[]", "null"])),
            False,
        ),
        else_=True,
    )
    return sa.select(
        sa.cast(T.c.id, sa.String).label("task_id"),
        T.c.task_type,
        T.c.title,
        T.c.status,
        T.c.verification_status,
        T.c.error_message,
        has_deps.label("has_dependencies"),
        T.c.attempt_count,
        stamp(T.c.created_at).label("created_at"),
        stamp(sa.func.coalesce(T.c.started_at, T.c.assigned_at, T.c.updated_at)).label(
            "state_since"
        ),
        judged(counts.c.judged, counts.c.all_rows).label("artifacts"),
        judged(counts.c.judged_verified, counts.c.all_verified).label("verified_artifacts"),
    ).select_from(T.outerjoin(counts, counts.c.task_id == T.c.id))


def _utc_naive(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """Timestamps as naive UTC (PostgreSQL returns them zoned, SQLite naive)."""
    fixes = [
        pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        for c in columns
        if getattr(frame.schema[c], "time_zone", None)
    ]
    return frame.with_columns(fixes) if fixes else frame


def _copy_tasks(conn: sa.Connection) -> pl.DataFrame:
    """PostgreSQL (psycopg2): the query's result streamed as CSV by `COPY` and parsed by polars,
    without a Python object per row or value."""
    query = tasks_query(for_copy=True).compile(
        dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
    )
    buffer = io.BytesIO()
    with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        sql = cursor.mogrify(str(query), query.params).decode()
        cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)", buffer)
    buffer.seek(0)
    stamps = ("created_at", "state_since")
    schema = {
        **TASK_SCHEMA,
        "has_dependencies": pl.String(),
        **{c: pl.Int64() for c in stamps},
    }
    frame = pl.read_csv(buffer, schema=schema)
    return frame.with_columns(
        pl.col("has_dependencies") == "t", *(pl.from_epoch(c, time_unit="us") for c in stamps)
    )


def _read_tasks(conn: sa.Connection) -> pl.DataFrame:
    """Any other database: polars reads the query's rows in batches."""
    batches = pl.read_database(
        tasks_query(),
        conn,
        iter_batches=True,
        batch_size=BATCH_ROWS,
        schema_overrides=TASK_SCHEMA,
        infer_schema_length=None,
    )
    frames = [_utc_naive(b, "created_at", "state_since") for b in batches]
    if not frames:
        return pl.DataFrame(schema=TASK_SCHEMA)
    return pl.concat(frames, how="vertical_relaxed")


def load_tasks(conn: sa.Connection) -> pl.DataFrame:
    """Every task with its judged artifact counts, straight from the database into polars."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        frame = _copy_tasks(conn)
    else:
        frame = _read_tasks(conn)
    return frame.select(pl.col(name).cast(dtype) for name, dtype in TASK_SCHEMA.items())


def build_audit(tasks: pl.DataFrame, now: datetime, config: TaskAuditConfig) -> pl.DataFrame:
    """The audit frame from the loaded tasks (pure: no I/O)."""
    now_naive = now.astimezone(UTC).replace(tzinfo=None)
    types = tasks["task_type"].fill_null("").unique().to_list()
    executable_types = [t for t in types if is_executable(t)]
    if "title" not in tasks.columns:
        tasks = tasks.with_columns(title=pl.lit(None, pl.String))
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
    worst_first = pl.Enum([f.value for f in REPORT_ORDER])
    return (
        audited.sort(pl.col("finding").cast(worst_first), "created_at")
        .with_columns(pl.col("age_hours").round(2))
        .select(*AUDIT_COLUMNS)
    )


def audit_database(engine: sa.Engine, now: datetime, config: TaskAuditConfig) -> pl.DataFrame:
    """Load every task and audit it: the asset's computation, without its writes."""
    with engine.connect() as conn:
        return build_audit(load_tasks(conn), now, config)


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


def _problems_table(problems: pl.DataFrame) -> str:
    """The first problems (the audit is sorted worst first, oldest first) as a narrow table:
    which task, what, why."""
    shown = problems.head(PROBLEMS_SHOWN).select(
        task=pl.coalesce(pl.col("title"), pl.col("task_id").str.slice(0, 8)),
        type="task_type",
        finding="finding",
        detail="detail",
    )
    if shown.height == 0:
        return "No problems: every task is `ok`."
    more = problems.height - shown.height
    footer = f"\n\n… and {more:,} more (all rows in the asset value)." if more > 0 else ""
    return markdown_table(shown) + footer


def _findings_table(counts: dict[str, int]) -> str:
    rows = pl.DataFrame(
        {"finding": list(counts), "tasks": [f"{n:,}" for n in counts.values()]},
        schema={"finding": pl.String, "tasks": pl.String},
    )
    return markdown_table(rows)


def _examples(audit: pl.DataFrame, limit: int = 10) -> str:
    rows = audit.head(limit).select(
        pl.format("{} ({})", pl.col("title").fill_null("untitled"), pl.col("task_id"))
    )
    return ", ".join(rows.to_series().to_list())


@dg.asset(
    group_name="tasks",
    kinds={"polars", "postgres"},
    owners=OWNERS,
    deps=[governance_tasks, task_artifacts],
    metadata=documented_columns(AUDIT_COLUMNS),
    check_specs=[
        dg.AssetCheckSpec(
            NO_FAKE_COMPLETIONS,
            asset="task_completion_audit",
            blocking=True,
            description=(
                "No task is completed without verified proof: every completed task has at "
                "least one artifact of its completing attempt, all of them verified, and its "
                "verification status is verified. ERROR severity and blocking: it fails with "
                "the number of fake completions (completed_without_artifact, "
                "completed_unverified) and examples, and assets downstream of the audit wait."
            ),
        )
    ],
)
def task_completion_audit(
    context: dg.AssetExecutionContext, config: TaskAuditConfig, governance_db: GovernanceDB
):
    """One row per task in governance_tasks with its audit finding.

    Re-materialised after batch runs (task_audit_after_runs_sensor, at most every few
    minutes) and every 15 minutes by task_completion_audit_schedule.

    Problems come first (fake completions first), oldest first; the columns are described in
    the Columns table. Each run also writes a row to production's audit_reports; with
    reset_fake_completions, fake completions go back to the queue, in the same transaction as
    that row. An empty governance_tasks gives an empty frame and a passing check.
    """
    now = datetime.now(UTC)
    audit = audit_database(governance_db.engine, now, config)
    fakes = audit.filter(pl.col("finding").is_in([f.value for f in FAKE_COMPLETIONS]))
    fake_ids = fakes["task_id"].to_list()
    counts = {
        name: int(n)
        for name, n in audit.group_by("finding").len().sort("len", descending=True).iter_rows()
    }
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
            "problems": dg.MetadataValue.md(_problems_table(problems)),
            "findings": dg.MetadataValue.md(_findings_table(counts)),
            "tasks_audited": audit.height,
            "problem_tasks": problems.height,
            "fake_completions": len(fake_ids),
            "fake_completions_reset": reset,
            **{f"finding/{name}": n for name, n in sorted(counts.items())},
        },
    )
    yield dg.AssetCheckResult(
        check_name=NO_FAKE_COMPLETIONS,
        passed=not fake_ids,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(fake_ids):,} of {audit.height:,} tasks completed without verified proof"
            if fake_ids
            else f"all {audit.height:,} tasks audited: no fake completion"
        ),
        metadata={"fake_completions": len(fake_ids), "examples": _examples(fakes)},
    )


task_completion_audit_job = dg.define_asset_job(
    AUDIT_JOB,
    selection=[task_completion_audit],
    description="Materialises task_completion_audit (and runs its check).",
)
task_completion_audit_schedule = dg.ScheduleDefinition(
    name="task_completion_audit_schedule",
    job=task_completion_audit_job,
    cron_schedule=AUDIT_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Backstop: audits every task every 15 minutes, whatever ran in between.",
)

"""SQLAlchemy 2 models of the governance tables (shared/contract.md).

Names and types follow the production JUGGERNAUT schema; columns marked "ours" are added by
this project. Types are PostgreSQL first with portable SQLite equivalents: ids are UUIDs
(text on SQLite), JSON columns are `jsonb` on PostgreSQL, `priority` is the `task_priority`
enum on PostgreSQL and text on SQLite. Every timestamp is UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from juggernaut_assets.db.enums import PRIORITY_ORDER, TaskStatus

UuidStr = sa.Uuid(as_uuid=False).with_variant(sa.String(36), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
PriorityType = sa.String(20).with_variant(
    postgresql.ENUM(*PRIORITY_ORDER, name="task_priority", create_type=False), "postgresql"
)
Timestamp = sa.DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: Json, list[Any]: Json, datetime: Timestamp}


class GovernanceTask(Base):
    """A unit of work. The `status` column is the queue."""

    __tablename__ = "governance_tasks"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    goal_id: Mapped[str | None] = mapped_column(UuidStr)
    parent_task_id: Mapped[str | None] = mapped_column(UuidStr)
    task_type: Mapped[str] = mapped_column(sa.String(100))
    title: Mapped[str | None] = mapped_column(sa.String(500))
    description: Mapped[str | None] = mapped_column(sa.Text)
    payload: Mapped[Any | None] = mapped_column(Json)
    result: Mapped[Any | None] = mapped_column(Json)
    metadata_: Mapped[Any | None] = mapped_column("metadata", Json)
    tags: Mapped[Any | None] = mapped_column(Json)
    priority: Mapped[str | None] = mapped_column(PriorityType, default="medium")
    status: Mapped[str] = mapped_column(sa.String(50), default=TaskStatus.PENDING.value)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    depends_on: Mapped[Any | None] = mapped_column(Json)
    requires_approval: Mapped[bool | None] = mapped_column(sa.Boolean, default=False)
    approval_reason: Mapped[str | None] = mapped_column(sa.Text)
    attempt_count: Mapped[int | None] = mapped_column(sa.Integer, default=0)
    max_attempts: Mapped[int | None] = mapped_column(sa.Integer, default=3)
    next_retry_at: Mapped[datetime | None]
    assigned_worker: Mapped[str | None] = mapped_column(sa.String(255))
    assigned_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    completion_evidence: Mapped[str | None] = mapped_column(sa.Text)
    verification_status: Mapped[str | None] = mapped_column(sa.Text)
    verified_at: Mapped[datetime | None]
    # ours
    dedupe_key: Mapped[str | None] = mapped_column(sa.Text)
    approved_by: Mapped[str | None] = mapped_column(sa.Text)
    approved_at: Mapped[datetime | None]
    event_pending: Mapped[bool | None] = mapped_column(sa.Boolean)
    """True from the moment an outcome is recorded until its `task_runs` event is written."""

    __table_args__ = (
        sa.Index(
            "ix_governance_tasks_dedupe_key",
            "dedupe_key",
            unique=True,
            postgresql_where=sa.text("dedupe_key IS NOT NULL"),
            sqlite_where=sa.text("dedupe_key IS NOT NULL"),
        ),
        sa.Index(
            "ix_governance_tasks_pending_queue",
            "created_at",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        ),
        sa.Index(
            "ix_governance_tasks_event_pending",
            "updated_at",
            postgresql_where=sa.text("event_pending"),
            sqlite_where=sa.text("event_pending"),
        ),
        sa.Index(
            "ix_governance_tasks_in_progress",
            "assigned_worker",
            postgresql_where=sa.text("status = 'in_progress'"),
            sqlite_where=sa.text("status = 'in_progress'"),
        ),
    )


class TaskArtifact(Base):
    """What a task really produced: the proof of work (ours)."""

    __tablename__ = "task_artifacts"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    task_id: Mapped[str] = mapped_column(UuidStr, sa.ForeignKey("governance_tasks.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.Text)
    uri: Mapped[str | None] = mapped_column(sa.Text)
    external_id: Mapped[str | None] = mapped_column(sa.Text)
    sha256: Mapped[str | None] = mapped_column(sa.Text)
    verified: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    verified_at: Mapped[datetime | None]
    details: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    attempt: Mapped[int | None] = mapped_column(sa.Integer)
    """The task attempt that produced it (null on rows written before this column existed)."""


class ToolCall(Base):
    """Every external side effect attempted, with what the other side answered (ours)."""

    __tablename__ = "tool_calls"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    task_id: Mapped[str | None] = mapped_column(UuidStr, index=True)
    tool_name: Mapped[str] = mapped_column(sa.Text)
    arguments: Mapped[Any | None] = mapped_column(Json)
    success: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    result: Mapped[Any | None] = mapped_column(Json)
    external_id: Mapped[str | None] = mapped_column(sa.Text)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class PrTracking(Base):
    """Pull requests opened for tasks."""

    __tablename__ = "pr_tracking"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    task_id: Mapped[str | None] = mapped_column(UuidStr)
    repo: Mapped[str] = mapped_column(sa.String(255))
    pr_number: Mapped[int] = mapped_column(sa.Integer)
    pr_url: Mapped[str | None] = mapped_column(sa.Text)
    current_state: Mapped[str | None] = mapped_column(sa.String(20))
    review_status: Mapped[str | None] = mapped_column(sa.String(30))
    mergeable: Mapped[bool | None] = mapped_column(sa.Boolean)
    merged_at: Mapped[datetime | None]
    metadata_: Mapped[Any | None] = mapped_column("metadata", Json)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    # ours
    branch: Mapped[str | None] = mapped_column(sa.Text)
    head_sha: Mapped[str | None] = mapped_column(sa.Text)
    merge_state: Mapped[str | None] = mapped_column(sa.String(20))
    checks_state: Mapped[str | None] = mapped_column(sa.String(20))
    merge_commit_sha: Mapped[str | None] = mapped_column(sa.Text)
    last_polled_at: Mapped[datetime | None]
    node_id: Mapped[str | None] = mapped_column(sa.Text)
    """GraphQL node id of the pull request, so `pr_state_sensor` can read it by `nodes(ids:)`."""

    __table_args__ = (sa.UniqueConstraint("repo", "pr_number", name="uq_pr_tracking_repo_pr"),)


class Experiment(Base):
    """An experiment and its progression state."""

    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    experiment_type: Mapped[str | None] = mapped_column(sa.String(100))
    hypothesis: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(50), default="draft")
    success_criteria: Mapped[Any | None] = mapped_column(Json)
    failure_criteria: Mapped[Any | None] = mapped_column(Json)
    budget_limit: Mapped[float | None] = mapped_column(sa.Numeric(asdecimal=False))
    budget_spent: Mapped[float | None] = mapped_column(sa.Numeric(asdecimal=False), default=0)
    cost_per_iteration: Mapped[float | None] = mapped_column(sa.Numeric(asdecimal=False))
    max_iterations: Mapped[int | None] = mapped_column(sa.Integer)
    current_iteration: Mapped[int | None] = mapped_column(sa.Integer, default=0)
    scheduled_end: Mapped[datetime | None]
    config: Mapped[Any | None] = mapped_column(Json)
    conclusion: Mapped[str | None] = mapped_column(sa.Text)
    results_summary: Mapped[Any | None] = mapped_column(Json)
    start_date: Mapped[datetime | None]
    end_date: Mapped[datetime | None]
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)


class ExperimentVariant(Base):
    """One arm of an experiment (an experiment with 0 or 1 variants is goal-based)."""

    __tablename__ = "experiment_variants"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    experiment_id: Mapped[str] = mapped_column(UuidStr, index=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    is_control: Mapped[bool | None] = mapped_column(sa.Boolean, default=False)
    traffic_percentage: Mapped[float | None] = mapped_column(sa.Numeric(asdecimal=False))
    config: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)


class ExperimentMetricPoint(Base):
    """One observed metric value (per unit, or for the whole experiment)."""

    __tablename__ = "experiment_metric_points"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    experiment_id: Mapped[str] = mapped_column(UuidStr)
    metric_name: Mapped[str] = mapped_column(sa.Text)
    metric_value: Mapped[float | None] = mapped_column(sa.Numeric(asdecimal=False))
    metric_type: Mapped[str | None] = mapped_column(sa.Text)
    expected_value: Mapped[float | None] = mapped_column(sa.Numeric(asdecimal=False))
    expected_operator: Mapped[str | None] = mapped_column(sa.Text)
    source_task_id: Mapped[str | None] = mapped_column(sa.Text)
    raw_data: Mapped[Any | None] = mapped_column(Json)
    collected_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    # ours
    variant: Mapped[str | None] = mapped_column(sa.Text)
    unit_id: Mapped[str | None] = mapped_column(sa.Text)
    denominator: Mapped[float | None] = mapped_column(sa.Double)
    covariate: Mapped[float | None] = mapped_column(sa.Double)

    __table_args__ = (
        sa.Index("ix_experiment_metric_points_experiment", "experiment_id", "metric_name"),
    )


class AuditReport(Base):
    """One row per audit run (production table)."""

    __tablename__ = "audit_reports"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    report_type: Mapped[str | None] = mapped_column(sa.String(100))
    report_date: Mapped[datetime | None] = mapped_column(default=utcnow)
    tasks_audited: Mapped[int | None] = mapped_column(sa.Integer)
    fake_completions_found: Mapped[int | None] = mapped_column(sa.Integer)
    fake_completions_reset: Mapped[int | None] = mapped_column(sa.Integer)
    details: Mapped[Any | None] = mapped_column(Json)


class DomainCheck(Base):
    """(ours) The last RDAP and Wayback lookup of a domain: the `expired_domains` cache.

    A row younger than the cache TTL and without `error` is reused instead of asking again.
    """

    __tablename__ = "domain_checks"

    domain: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    registered: Mapped[bool | None] = mapped_column(sa.Boolean)
    rdap_status: Mapped[Any | None] = mapped_column(Json)
    expiration_date: Mapped[date | None] = mapped_column(sa.Date)
    registration_date: Mapped[date | None] = mapped_column(sa.Date)
    last_changed: Mapped[date | None] = mapped_column(sa.Date)
    wayback_snapshots: Mapped[int | None] = mapped_column(sa.Integer)
    first_archived_year: Mapped[int | None] = mapped_column(sa.Integer)
    rdap_url: Mapped[str | None] = mapped_column(sa.Text)
    error: Mapped[str | None] = mapped_column(sa.Text)


class SpendLedger(Base):
    """(ours) Every amount the platform commits to spend: reserved inside the transaction that
    checks the budget, then `charged` (the registrar took the order) or `released`."""

    __tablename__ = "spend_ledger"

    id: Mapped[str] = mapped_column(UuidStr, primary_key=True, default=new_id)
    task_id: Mapped[str | None] = mapped_column(UuidStr, index=True)
    experiment_id: Mapped[str | None] = mapped_column(UuidStr, index=True)
    category: Mapped[str] = mapped_column(sa.String(50))
    amount: Mapped[float] = mapped_column(sa.Numeric(12, 2, asdecimal=False))
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    external_id: Mapped[str | None] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(20))
    details: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)


class EmailSuppression(Base):
    """(ours) Addresses never to be mailed (lower case), whatever a task asks."""

    __tablename__ = "email_suppressions"

    address: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


metadata = Base.metadata

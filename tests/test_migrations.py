"""`juggernaut db upgrade` against a database shaped like production, with production's rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from tests.conftest import PG_SERVER_URL, _pg_admin_engine, platform_resources
from tests.queue_driver import drain, task_row

PRODUCTION_DDL = [
    """CREATE TABLE governance_tasks (
        id uuid PRIMARY KEY, goal_id uuid, parent_task_id uuid, task_type varchar(100),
        title varchar(500), description text, payload jsonb, result jsonb, metadata jsonb,
        tags jsonb, priority task_priority DEFAULT 'medium', status varchar(50),
        error_message text, failure_reason text, depends_on jsonb, requires_approval boolean,
        approval_reason text, attempt_count integer, max_attempts integer,
        next_retry_at timestamptz, assigned_worker varchar(255), assigned_at timestamptz,
        started_at timestamptz, completed_at timestamptz, created_at timestamptz,
        updated_at timestamptz, completion_evidence text, verification_status text,
        verified_at timestamptz, worker_type varchar(50), estimated_cost numeric)""",
    """CREATE TABLE pr_tracking (
        id uuid PRIMARY KEY, task_id uuid, repo varchar(255), pr_number integer, pr_url text,
        current_state varchar(20), review_status varchar(30), mergeable boolean,
        merged_at timestamptz, metadata jsonb, created_at timestamptz, updated_at timestamptz,
        UNIQUE (repo, pr_number))""",
    """CREATE TABLE tool_executions (
        id serial PRIMARY KEY, tool text, params text, executed_at timestamptz)""",
    """CREATE TABLE audit_reports (
        id uuid PRIMARY KEY, report_type varchar(100), report_date timestamptz,
        tasks_audited integer, fake_completions_found integer, fake_completions_reset integer,
        details jsonb)""",
]
PRODUCTION_ROWS = [
    """INSERT INTO governance_tasks (id, task_type, title, payload, priority, status,
        depends_on, attempt_count, max_attempts, created_at, worker_type, estimated_cost)
       VALUES ('11111111-1111-1111-1111-111111111111', 'code_fix', 'Fix login',
        '{"repo": "acme/app", "instruction": "fix the login"}', 'critical', 'pending', '[]', 0, 3,
        '2026-01-01 00:00:00+00', 'executor', 1.5)""",
    """INSERT INTO governance_tasks (id, task_type, title, priority, status, created_at)
       VALUES ('22222222-2222-2222-2222-222222222222', 'analysis', 'Old report', 'low',
        'completed', '2025-06-01 00:00:00+00')""",
    """INSERT INTO pr_tracking (id, task_id, repo, pr_number, pr_url, current_state)
       VALUES ('33333333-3333-3333-3333-333333333333', '11111111-1111-1111-1111-111111111111',
        'acme/app', 7, 'https://github.com/acme/app/pull/7', 'open')""",
    "INSERT INTO tool_executions (tool, params) VALUES ('slack', 'x')",
]


def _sqlite_ddl(statement: str) -> str:
    for pg, lite in [
        ("uuid", "TEXT"),
        ("jsonb", "TEXT"),
        ("timestamptz", "TIMESTAMP"),
        ("task_priority", "TEXT"),
        ("serial PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"),
    ]:
        statement = statement.replace(pg, lite)
    return statement.replace("+00'", "'")


@pytest.fixture(params=["sqlite", "postgresql"])
def production_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with production's shape and rows, and no Alembic history."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'production.db'}"
        with make_engine(url).begin() as conn:
            for statement in PRODUCTION_DDL + PRODUCTION_ROWS:
                conn.exec_driver_sql(_sqlite_ddl(statement))
        yield url
        return
    request.getfixturevalue("pg_database_url")  # skips or fails like every PostgreSQL test
    name = f"ja_prod_{uuid.uuid4().hex[:8]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    with make_engine(url).begin() as conn:
        conn.exec_driver_sql(
            "CREATE TYPE task_priority AS ENUM "
            "('critical', 'high', 'medium', 'normal', 'low', 'background')"
        )
        for statement in PRODUCTION_DDL + PRODUCTION_ROWS:
            conn.exec_driver_sql(statement)
    yield url
    make_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _snapshot(url: str) -> dict[str, object]:
    with make_engine(url).connect() as conn:
        return {
            "tasks": conn.execute(
                sa.text(
                    "SELECT id, task_type, title, priority, status, worker_type, estimated_cost "
                    "FROM governance_tasks ORDER BY id"
                )
            ).all(),
            "prs": conn.execute(sa.text("SELECT id, repo, pr_number FROM pr_tracking")).all(),
            "tool_executions": conn.execute(
                sa.text("SELECT tool, params FROM tool_executions")
            ).all(),
        }


def test_upgrade_adds_ours_and_keeps_production_rows_and_columns(production_url):
    before = _snapshot(production_url)
    upgrade(production_url)
    upgrade(production_url)
    assert _snapshot(production_url) == before
    inspector = sa.inspect(make_engine(production_url))
    task_columns = {c["name"] for c in inspector.get_columns("governance_tasks")}
    assert {
        "dedupe_key",
        "approved_by",
        "approved_at",
        "worker_type",
        "estimated_cost",
    } <= task_columns
    assert {"branch", "merge_state", "checks_state", "merge_commit_sha"} <= {
        c["name"] for c in inspector.get_columns("pr_tracking")
    }
    assert {"task_artifacts", "tool_calls", "experiments", "alembic_version"} <= set(
        inspector.get_table_names()
    )
    assert [c["name"] for c in inspector.get_columns("tool_executions")] == [
        "id",
        "tool",
        "params",
        "executed_at",
    ]
    indexes = {i["name"] for i in inspector.get_indexes("governance_tasks")}
    assert "ix_governance_tasks_dedupe_key" in indexes


def test_upgrade_on_an_empty_database_creates_everything_and_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    upgrade(url)
    tables = set(sa.inspect(make_engine(url)).get_table_names())
    upgrade(url)
    assert tables == set(sa.inspect(make_engine(url)).get_table_names())
    assert "governance_tasks" in tables


def test_production_tasks_run_through_the_queue_after_upgrade(production_url, instance):
    """The production row (code_fix, critical) is claimed and blocked for its missing token."""
    upgrade(production_url)
    drain(instance, platform_resources(production_url))
    row = task_row(production_url, "11111111-1111-1111-1111-111111111111")
    assert row.status == "blocked"
    assert row.error_message == "GITHUB_TOKEN is not configured"

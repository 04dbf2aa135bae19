"""`juggernaut`: the operator's command line (schema, tasks, demo data)."""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from typing import Any

import click
import sqlalchemy as sa

from juggernaut_assets import settings
from juggernaut_assets.db.engine import make_engine, redact_url
from juggernaut_assets.db.enums import Priority
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.models import GovernanceTask, PrTracking, TaskArtifact, ToolCall
from juggernaut_assets.db.rollups import rebuild_sums, rollups_installed
from juggernaut_assets.execution.scan import task_page_url
from juggernaut_assets.tasks import settle
from juggernaut_assets.tasks.create import add_task


def _engine() -> sa.Engine:
    return make_engine(settings.database_url())


def _task_id(value: str) -> str:
    """A task id as the database stores it (canonical UUID text); a clear error otherwise."""
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise click.ClickException(f"not a task id: {value!r} (expected a UUID)") from None


@click.group()
def main() -> None:
    """Operate the JUGGERNAUT governance database (URL from JUGGERNAUT_DATABASE_URL)."""


@main.group()
def db() -> None:
    """The governance schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the governance schema (idempotent, additive only)."""
    click.echo(upgrade(settings.database_url()))


@db.command("rebuild-rollups")
def db_rebuild_rollups() -> None:
    """Recompute experiment_metric_sums from every point (clears float drift after many
    deletes and updates; writers of metric points wait while it runs)."""
    with _engine().begin() as conn:
        if not rollups_installed(conn):
            raise click.ClickException(
                "the experiment_metric_sums triggers are not installed: run `juggernaut db upgrade`"
            )
        groups = rebuild_sums(conn)
    click.echo(f"experiment_metric_sums rebuilt: {groups} groups")


@main.group()
def tasks() -> None:
    """Add, inspect and decide on tasks."""


@tasks.command("add")
@click.argument("task_type")
@click.option("--payload", default="{}", help="The task's payload as a JSON object.")
@click.option("--title")
@click.option("--priority", type=click.Choice([p.value for p in Priority]), default="medium")
@click.option("--depends-on", multiple=True, help="Id of a task that must complete first.")
@click.option("--requires-approval", is_flag=True)
@click.option("--approval-reason")
@click.option("--dedupe-key")
def tasks_add(
    task_type: str,
    payload: str,
    title: str | None,
    priority: str,
    depends_on: tuple[str, ...],
    requires_approval: bool,
    approval_reason: str | None,
    dedupe_key: str | None,
) -> None:
    """Add a pending task of TASK_TYPE; prints its id."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--payload") from None
    dependencies = [_task_id(d) for d in depends_on]
    with sa.orm.Session(_engine()) as session, session.begin():
        task, created = add_task(
            session,
            task_type,
            data,
            title=title,
            priority=priority,
            depends_on=dependencies,
            requires_approval=requires_approval,
            approval_reason=approval_reason,
            dedupe_key=dedupe_key,
        )
        task_id = task.id
    click.echo(task_id if created else f"{task_id} (already exists with this dedupe key)")


def _task_report(task_id: str) -> dict[str, Any]:
    with _engine().connect() as conn:
        task = conn.execute(
            sa.select(GovernanceTask.__table__).where(GovernanceTask.id == task_id)
        ).one_or_none()
        if task is None:
            raise click.ClickException(f"task {task_id} does not exist")
        artifacts = conn.execute(
            sa.select(TaskArtifact.__table__)
            .where(TaskArtifact.task_id == task_id)
            .order_by(TaskArtifact.created_at)
        ).all()
        calls = conn.execute(
            sa.select(ToolCall.tool_name, ToolCall.success, ToolCall.error_message)
            .where(ToolCall.task_id == task_id)
            .order_by(ToolCall.started_at)
        ).all()
    fields = (
        "id",
        "task_type",
        "title",
        "status",
        "priority",
        "error_message",
        "attempt_count",
        "max_attempts",
        "next_retry_at",
        "assigned_worker",
        "approved_by",
        "approved_at",
        "created_at",
        "completed_at",
        "verification_status",
        "completion_evidence",
    )
    report = {f: task._mapping[f] for f in fields}
    report["artifacts"] = [
        {k: a._mapping[k] for k in ("kind", "uri", "external_id", "sha256", "verified")}
        for a in artifacts
    ]
    report["tool_calls"] = [dict(c._mapping) for c in calls]
    return report


@tasks.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def tasks_show(task_id: str, as_json: bool) -> None:
    """Status, error, attempts and artifacts of one task."""
    task_id = _task_id(task_id)
    report = _task_report(task_id)
    page = task_page_url(task_id)
    if as_json:
        click.echo(json.dumps({**report, "dagster_page": page}, default=str, indent=2))
        return
    click.echo(f"{'dagster page':>20}: {page}")
    for key, value in report.items():
        if key in ("artifacts", "tool_calls") or value is None:
            continue
        click.echo(f"{key:>20}: {value}")
    click.echo(f"{'artifacts':>20}: {len(report['artifacts'])}")
    for a in report["artifacts"]:
        mark = "verified" if a["verified"] else "NOT verified"
        click.echo(f"{'':>22}{a['kind']} {a['uri'] or a['external_id'] or ''} ({mark})")
    for c in report["tool_calls"]:
        ok = "ok" if c["success"] else f"failed: {c['error_message']}"
        click.echo(f"{'tool call':>20}: {c['tool_name']} {ok}")


@tasks.command("list")
@click.option("--status")
@click.option("--title", help="Only tasks whose title contains this text (any case).")
@click.option("--limit", default=20, show_default=True)
def tasks_list(status: str | None, title: str | None, limit: int) -> None:
    """The newest tasks, one line each (id, type, status, title, reason)."""
    t = GovernanceTask.__table__
    query = sa.select(t.c.id, t.c.task_type, t.c.status, t.c.title, t.c.error_message).order_by(
        t.c.created_at.desc()
    )
    if status:
        query = query.where(t.c.status == status)
    if title:
        query = query.where(t.c.title.ilike(f"%{_like_escaped(title)}%", escape="\\"))
    with _engine().connect() as conn:
        for row in conn.execute(query.limit(limit)):
            error = f"  {row.error_message}" if row.error_message else ""
            click.echo(f"{row.id}  {row.task_type:<18} {row.status:<17}{row.title or ''}{error}")


def _like_escaped(text: str) -> str:
    """`text` matched literally inside a LIKE pattern (its `%`, `_` and `\\` escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@main.group()
def prs() -> None:
    """Pull requests opened for tasks, as `pr_state_sensor` last saw them."""


@prs.command("list")
@click.option("--state", help="open, closed or merged (default: all)")
@click.option("--limit", default=50, show_default=True)
def prs_list(state: str | None, limit: int) -> None:
    """One line per tracked pull request: state, merge state, checks, review, task."""
    p, t = PrTracking.__table__, GovernanceTask.__table__
    query = (
        sa.select(
            p.c.repo,
            p.c.pr_number,
            p.c.current_state,
            p.c.merge_state,
            p.c.checks_state,
            p.c.review_status,
            p.c.last_polled_at,
            p.c.task_id,
            t.c.status.label("task_status"),
        )
        .select_from(p.outerjoin(t, t.c.id == p.c.task_id))
        .order_by(p.c.updated_at.desc())
        .limit(limit)
    )
    if state:
        query = query.where(p.c.current_state == state)
    with _engine().connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        click.echo("no tracked pull requests")
    for r in rows:
        polled = f"{r.last_polled_at:%Y-%m-%d %H:%M}" if r.last_polled_at else "never polled"
        click.echo(
            f"{r.repo}#{r.pr_number:<6} {r.current_state or '?':<7} "
            f"merge={r.merge_state or '?':<8} checks={r.checks_state or '?':<8} "
            f"review={r.review_status or '?':<17} {polled}  task {r.task_id} "
            f"({r.task_status or 'no task'})"
        )


def _decide(action: Any, task_id: str, *args: Any) -> None:
    try:
        action(_engine(), _task_id(task_id), *args)
    except settle.TransitionError as exc:
        raise click.ClickException(str(exc)) from None


@tasks.command("approve")
@click.argument("task_id")
@click.option("--by", "who", default=getpass.getuser, show_default="current user")
def tasks_approve(task_id: str, who: str) -> None:
    """Approve a task waiting for approval (recorded with who and when)."""
    _decide(settle.approve, task_id, who)
    click.echo(f"approved {task_id} as {who}")


@tasks.command("deny")
@click.argument("task_id")
@click.option("--by", "who", default=getpass.getuser, show_default="current user")
@click.option("--reason")
def tasks_deny(task_id: str, who: str, reason: str | None) -> None:
    """Deny a task waiting for approval: it is cancelled."""
    _decide(settle.deny, task_id, who, reason)
    click.echo(f"denied {task_id} as {who}")


@tasks.command("retry")
@click.argument("task_id")
def tasks_retry(task_id: str) -> None:
    """Put a blocked or failed task back in the queue (e.g. after configuring GITHUB_TOKEN)."""
    _decide(settle.retry, task_id)
    click.echo(f"{task_id} is pending again")


@main.group()
def demo() -> None:
    """The embedded demo data set."""


@demo.command("seed")
def demo_seed() -> None:
    """Add the demo tasks (idempotent: each has a dedupe key)."""
    from juggernaut_assets.demo import seed

    created = seed(_engine())
    click.echo(
        f"demo data: {created} new task(s) and experiments in {redact_url(settings.database_url())}"
    )


if __name__ == "__main__":
    sys.exit(main())

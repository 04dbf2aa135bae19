"""`task_completion_audit` over 1,000,000 tasks: time and peak memory, new path beside the old.

Seeds a throwaway PostgreSQL database with `generate_series`: 1,000,000 tasks (60% completed
with one verified artifact of their completing attempt, plus an older rejected attempt on some;
fake completions without artifacts or with an unverified one; the rest pending, in progress,
blocked, failed, awaiting a merge). Each path is measured in a fresh Python process (so its peak
RSS is its own): the audit's computation as the asset runs it (`audit_database`: load every task
with its judged artifact counts, then apply the rules), not the parquet write.

- new: one aggregated query read by `pl.read_database` in batches, rules as polars expressions.
- old: the previous loader (the same join with a correlated `EXISTS`, grouped by task, rows
  turned into Python dicts, then a frame), with the same rules. It is run at `OLD_SIZE` tasks
  (a subset of the same data) when that is smaller than the full size, and its figures are
  extrapolated linearly (said so in the output).

Target: 1,000,000 tasks in <= 5 s with <= 1.5 GB peak RSS.

    .venv/bin/python -m benchmarks.audit [--tasks 1000000] [--old-tasks 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

import polars as pl
import sqlalchemy as sa

from benchmarks._pg import temporary_database
from juggernaut_assets.assets.task_audit import TaskAuditConfig, audit_database, build_audit
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact

TASKS_SQL = """
INSERT INTO governance_tasks (id, task_type, title, payload, priority, status, attempt_count,
    max_attempts, depends_on, created_at, started_at, completed_at, verification_status,
    error_message)
SELECT gen_random_uuid(), (ARRAY['analysis','database','scan','workflow','code'])[1 + g % 5],
    'task ' || g, '{"sql": "SELECT 1"}',
    (ARRAY['critical','high','medium','normal','low','background'])[1 + g % 6]::task_priority,
    CASE WHEN g % 10 < 6 THEN 'completed'
         ELSE (ARRAY['pending','in_progress','blocked','failed'])[1 + g % 4] END,
    1 + g % 2, 3,
    (CASE WHEN g % 10 = 8 THEN '["00000000-0000-0000-0000-000000000000"]' ELSE '[]' END)::jsonb,
    now() - make_interval(secs => g), now() - make_interval(secs => g / 2),
    CASE WHEN g % 10 < 6 THEN now() - make_interval(secs => g / 3) END,
    CASE WHEN g % 10 < 6 THEN 'verified' END,
    CASE WHEN g % 10 >= 8 THEN 'reason ' || g END
FROM generate_series(1, :n) AS g
"""
ARTIFACTS_SQL = """
INSERT INTO task_artifacts (id, task_id, kind, uri, verified, created_at, attempt)
SELECT gen_random_uuid(), t.id, 'query_result', 'file:///artifacts/' || t.id || '.json',
    NOT (t.title LIKE '%23'), t.started_at + interval '1 second', t.attempt_count
FROM governance_tasks t
WHERE t.status = 'completed' AND t.title NOT LIKE '%13'
UNION ALL
SELECT gen_random_uuid(), t.id, 'query_result', 'file:///artifacts/' || t.id || '-1.json',
    false, t.started_at - interval '1 minute', 1
FROM governance_tasks t
WHERE t.status = 'completed' AND t.attempt_count = 2 AND t.title LIKE '%5'
"""


def seed(url: str, tasks: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(TASKS_SQL), {"n": tasks})
        conn.execute(sa.text(ARTIFACTS_SQL))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE governance_tasks"))
        conn.execute(sa.text("VACUUM ANALYZE task_artifacts"))
    engine.dispose()


T = GovernanceTask.__table__
A = TaskArtifact.__table__
OLD_SCHEMA: dict[str, pl.DataType] = {
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


def old_load_tasks(conn: sa.Connection, limit: int | None) -> pl.DataFrame:
    """The loader as it was before the polars rewrite (kept here as the baseline)."""
    numbered = A.alias("numbered")
    task_has_numbered_rows = sa.exists().where(
        numbered.c.task_id == T.c.id, numbered.c.attempt.is_not(None)
    )
    same_round = sa.or_(
        T.c.started_at.is_(None), A.c.created_at.is_(None), A.c.created_at >= T.c.started_at
    )
    judged = sa.or_(
        sa.and_(A.c.attempt == T.c.attempt_count, same_round),
        sa.and_(A.c.attempt.is_(None), ~task_has_numbered_rows),
    )
    has_deps = sa.case(
        (
            sa.or_(T.c.depends_on.is_(None), sa.cast(T.c.depends_on, sa.Text).in_(["[]", "null"])),
            False,
        ),
        else_=True,
    )
    tasks = T
    if limit is not None:  # the old path at a smaller size: the first `limit` tasks
        ids = sa.select(T.c.id).order_by(T.c.created_at.desc()).limit(limit).subquery()
        tasks = T.join(ids, ids.c.id == T.c.id)
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
        .select_from(tasks.outerjoin(A, sa.and_(A.c.task_id == T.c.id, judged)))
        .group_by(T.c.id)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["task_id"] = str(row["task_id"])
        for col in ("created_at", "state_since"):
            if isinstance(row[col], datetime) and row[col].tzinfo is not None:
                row[col] = row[col].astimezone(UTC).replace(tzinfo=None)
    return pl.DataFrame(rows, schema=OLD_SCHEMA).with_columns(title=pl.lit(None, pl.String))


def _child(path: str, url: str, limit: int | None, now: datetime) -> None:
    """Measure one path in this (fresh) process and print its figures as JSON."""
    engine = make_engine(url)
    with engine.connect() as conn:  # connect and warm the catalogue outside the timing
        conn.execute(sa.text("SELECT 1"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if path == "new":
        audit = audit_database(engine, now, TaskAuditConfig())
    else:
        with engine.connect() as conn:
            audit = build_audit(old_load_tasks(conn, limit), now, TaskAuditConfig())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    findings = dict(audit.group_by("finding").len().iter_rows())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": audit.height,
                "rss_before_mb": rss_before / 1024,
                "peak_rss_mb": peak / 1024,
                "findings": findings,
            }
        )
    )


def _measure(path: str, url: str, limit: int | None, now: datetime) -> dict:
    argv = [sys.executable, "-m", "benchmarks.audit", "--child", path, "--url", url]
    argv += ["--now", now.isoformat()]
    if limit is not None:
        argv += ["--limit", str(limit)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _line(name: str, figures: dict, scale: float = 1.0) -> str:
    note = f" (measured at {figures['rows']:,} tasks, x{scale:g} extrapolated)" if scale > 1 else ""
    before = figures["rss_before_mb"]
    peak = before + (figures["peak_rss_mb"] - before) * scale
    return (
        f"{name}: {figures['seconds'] * scale:6.2f} s, peak RSS {peak:6.0f} MB"
        f" (process before the audit: {before:.0f} MB){note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--old-tasks", type=int, default=None)
    parser.add_argument("--child", choices=["new", "old"])
    parser.add_argument("--url")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--now", type=datetime.fromisoformat)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.limit, args.now)
        return
    old_size = args.old_tasks or args.tasks
    with temporary_database("ja_bench_audit") as url:
        start = time.perf_counter()
        seed(url, args.tasks)
        print(f"seeded {args.tasks:,} tasks in {time.perf_counter() - start:.1f} s")
        now = datetime.now(UTC)
        new = _measure("new", url, None, now)
        assert new["rows"] == args.tasks, new
        print(_line("new (polars, one aggregated query)", new))
        print(f"  findings: {new['findings']}")
        old = _measure("old", url, old_size if old_size < args.tasks else None, now)
        scale = args.tasks / old["rows"]
        print(_line("old (row dicts, correlated EXISTS) ", old, scale))
        if scale == 1:
            assert old["findings"] == new["findings"], (old["findings"], new["findings"])
            print("  same findings as the new path")
        print(
            f"new vs old: {old['seconds'] * scale / new['seconds']:.1f}x faster; "
            f"target <= 5 s and <= 1,536 MB at 1,000,000 tasks: "
            f"{'met' if new['seconds'] <= 5 and new['peak_rss_mb'] <= 1536 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()

"""Task SQL is read-only, bounded and exact: the guard, the database's rights, limits, JSON."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from juggernaut_assets.db import readonly_role
from juggernaut_assets.db.engine import make_engine, make_task_sql_engine, read_only_connection
from juggernaut_assets.db.errors import is_transient
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.execution.outcome import RetriableError, TaskRejected
from juggernaut_assets.execution.sql import check_read_only, run_read_only, write_query_artifact
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.tasks.create import add_task
from tests.conftest import PG_SERVER_URL, platform_resources
from tests.queue_driver import drain, task_row

ADMIN_FUNCTIONS = [
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT * FROM pg_ls_dir('.')", "pg_ls_dir"),
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT lo_export(1, '/tmp/juggernaut-lo')", "lo_export"),
    ("SELECT pg_reload_conf()", "pg_reload_conf"),
    ("SELECT pg_terminate_backend(1)", "pg_terminate_backend"),
    ("SELECT dblink_exec('dbname=x', 'DELETE FROM governance_tasks')", "dblink_exec"),
    ("SELECT set_config('role', 'postgres', false)", "set_config"),
    ("SELECT current_setting('data_directory')", "current_setting"),
    ("SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
    ("SELECT pg_sleep(1)", "pg_sleep"),
    ("SELECT txid_current()", "txid_current"),
    ("SELECT nextval('some_sequence')", "nextval"),
    ("SELECT pg_catalog.pg_sleep(1)", "pg_sleep"),
    ('SELECT "pg_sleep"(1)', "pg_sleep"),
    ("SELECT 1 FROM pg_sleep(1)", "pg_sleep"),
    ("SELECT n FROM generate_series(1, 3) AS n WHERE pg_sleep(1) IS NULL", "pg_sleep"),
    ("SELECT my_security_definer_function()", "my_security_definer_function"),
]

BYPASSES = [
    ("SELECT public.lower('x')", "schema-qualified function public.lower"),
    ("SELECT \"LOWER\"('x')", 'quoted function name "LOWER"'),
    ("COPY governance_tasks TO '/tmp/out'", "COPY statements are not allowed"),
    ("SELECT * INTO stolen FROM governance_tasks", "SELECT … INTO creates a table"),
    ("SELECT * FROM governance_tasks FOR UPDATE", "row locks"),
    ("SELECT * FROM governance_tasks FOR SHARE", "row locks"),
    ("LOCK TABLE governance_tasks", "not allowed, only SELECT"),
    ("SELECT 1; SELECT 2", "exactly one SQL statement"),
    ("SELECT '\\'; RESET ROLE; SELECT pg_read_file('x'); --'", "exactly one SQL statement"),
]

PURE_QUERIES = [
    "SELECT count(*), sum(attempt_count), avg(priority_rank), max(created_at) FROM t",
    "SELECT lower(title), upper(title), length(title), substr(title, 1, 3), trim(title) FROM t",
    "SELECT coalesce(a, 0), nullif(a, 1), CASE WHEN a > 1 THEN 'x' ELSE 'y' END FROM t",
    "SELECT row_number() OVER (ORDER BY a), rank() OVER (PARTITION BY b ORDER BY a) FROM t",
    "SELECT abs(a), round(a, 2), floor(a), ceil(a), sqrt(a), power(a, 2) FROM t",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT * FROM c",
]

PG_PURE_QUERIES = [
    "SELECT payload->>'sql', payload->'params', jsonb_array_length(tags) FROM governance_tasks",
    "SELECT date_trunc('day', created_at), extract(epoch FROM now()), age(now()) FROM t",
    "SELECT CAST(a AS text), a::int, pg_catalog.lower(b) FROM t",
    "SELECT * FROM generate_series(1, 10) AS g(n) JOIN jsonb_each('{}'::jsonb) AS j ON true",
    "SELECT string_agg(title, ','), jsonb_agg(id), array_agg(id) FROM governance_tasks",
]


def _add(db: GovernanceDB, task_type: str, payload: object, **kwargs: object) -> str:
    with db.session() as s:
        task, _ = add_task(s, task_type, payload, **kwargs)
    return task.id


def _pg_admin() -> sa.Engine:
    return sa.create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")


@pytest.mark.parametrize(("sql", "function"), ADMIN_FUNCTIONS)
def test_guard_refuses_functions_outside_the_pure_allowlist(sql, function):
    with pytest.raises(TaskRejected, match=f"function {function}\\(\\) is not allowed"):
        check_read_only(sql, "postgresql")


@pytest.mark.parametrize(("sql", "message"), BYPASSES)
def test_guard_refuses_bypasses_of_the_read_only_rule(sql, message):
    with pytest.raises(TaskRejected, match=r"read-only task|exactly one") as info:
        check_read_only(sql, "postgresql")
    assert message in str(info.value)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("sql", PURE_QUERIES)
def test_guard_allows_pure_functions(sql, dialect):
    check_read_only(sql, dialect)


@pytest.mark.parametrize("sql", PG_PURE_QUERIES)
def test_guard_allows_postgres_json_date_and_set_returning_functions(sql):
    check_read_only(sql, "postgresql")


def test_upgrade_creates_a_nologin_reader_role_with_select_only(pg_database_url):
    with make_engine(pg_database_url).connect() as conn:
        role = conn.execute(
            sa.text("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = :r"),
            {"r": readonly_role.READER_ROLE},
        ).one()
        rights = conn.execute(
            sa.text(
                "SELECT has_table_privilege(:r, 'governance_tasks', 'SELECT'),"
                " has_table_privilege(:r, 'governance_tasks', 'INSERT'),"
                " has_table_privilege(:r, 'governance_tasks', 'UPDATE'),"
                " has_table_privilege(:r, 'tool_calls', 'SELECT')"
            ),
            {"r": readonly_role.READER_ROLE},
        ).one()
    assert tuple(role) == (False, False)
    assert tuple(rights) == (True, False, False, True)
    assert "task SQL runs as juggernaut_task_reader" in upgrade(pg_database_url)


@pytest.fixture
def dblink(pg_database_url: str) -> bool:
    """Whether the dblink extension could be installed in the test database."""
    try:
        with make_engine(pg_database_url).begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS dblink")
    except sa.exc.DBAPIError:
        return False
    return True


def test_database_refuses_admin_functions_even_past_the_guard(pg_database_url, dblink):
    """As the superuser the tests connect with, the reader role still cannot touch the server."""
    db = GovernanceDB(url=pg_database_url)
    engine = db.engine
    _add(db, "analysis", {"sql": "SELECT 1"})
    target = Path(f"/tmp/juggernaut-lo-{uuid.uuid4().hex}")
    with make_engine(pg_database_url).begin() as conn:
        oid = conn.exec_driver_sql("SELECT lo_from_bytea(0, 'secret')").scalar_one()
        tasks_before = conn.exec_driver_sql("SELECT count(*) FROM governance_tasks").scalar_one()
    admin = _pg_admin()
    with admin.connect() as victim:
        victim_pid = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        statements = [
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT * FROM pg_ls_dir('.')",
            f"SELECT lo_export({oid}, '{target}')",
            "SELECT lo_import('/etc/passwd')",
            "SELECT pg_reload_conf()",
            f"SELECT pg_terminate_backend({victim_pid})",
        ]
        if dblink:
            dsn = f"host=127.0.0.1 user=postgres dbname={make_url(pg_database_url).database}"
            statements.append(f"SELECT dblink_exec('{dsn}', 'DELETE FROM governance_tasks')")
        for sql in statements:
            with pytest.raises(sa.exc.DBAPIError), read_only_connection(engine) as conn:
                conn.exec_driver_sql(sql).fetchall()
            with pytest.raises(TaskRejected, match="is not allowed"):
                run_read_only(engine, sql, {}, 10)
        assert victim.exec_driver_sql("SELECT 1").scalar_one() == 1
    assert not target.exists()
    with make_engine(pg_database_url).begin() as conn:
        conn.exec_driver_sql(f"SELECT lo_unlink({oid})")
        assert conn.exec_driver_sql("SELECT count(*) FROM governance_tasks").scalar_one() == (
            tasks_before
        )
    admin.dispose()


def test_advisory_lock_taken_on_the_read_only_path_does_not_outlive_the_task(pg_database_url):
    engine = GovernanceDB(url=pg_database_url).engine
    with read_only_connection(engine) as conn:
        conn.exec_driver_sql("SELECT pg_advisory_lock(727275)")
    with read_only_connection(engine) as conn:  # the same pooled connection, reset
        held = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 727275"
        ).scalar_one()
    assert held == 0
    with make_engine(pg_database_url).connect() as other:
        assert other.exec_driver_sql("SELECT pg_try_advisory_lock(727275)").scalar_one()
        other.exec_driver_sql("SELECT pg_advisory_unlock(727275)")
        other.rollback()
    assert run_read_only(engine, "SELECT 1 AS one", {}, 10).rows == [[1]]


@pytest.fixture
def app_database() -> Iterator[str]:
    """A database owned by an ordinary role (no CREATEROLE, not a member of the reader role)."""
    admin = _pg_admin()
    suffix = uuid.uuid4().hex[:8]
    role, database = f"ja_app_{suffix}", f"ja_app_{suffix}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f'CREATE DATABASE "{database}" OWNER {role}')
    url = make_url(PG_SERVER_URL).set(username=role, database=database)
    yield url.render_as_string(hide_password=False)
    for engine_url in {url.render_as_string(hide_password=False)}:
        make_engine(engine_url).dispose()
        make_task_sql_engine(engine_url).dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for name in (f"ja_ro_{suffix}", role):
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
    admin.dispose()


def test_sql_task_is_blocked_without_a_read_only_role_and_runs_on_a_read_only_url(
    app_database, instance
):
    message = upgrade(app_database)
    assert "may not use it" in message
    db = GovernanceDB(url=app_database)
    blocked = _add(db, "analysis", {"sql": "SELECT count(*) FROM governance_tasks"})
    drain(instance, platform_resources(app_database))
    row = task_row(app_database, blocked)
    assert row.status == "blocked"
    assert "CREATEROLE" in row.error_message
    assert "JUGGERNAUT_READONLY_DATABASE_URL" in row.error_message

    reader = f"ja_ro_{make_url(app_database).username.removeprefix('ja_app_')}"
    with _pg_admin().connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {reader} LOGIN")
    with make_engine(app_database).begin() as conn:
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}")
    readonly_url = make_url(app_database).set(username=reader).render_as_string(False)
    db = GovernanceDB(url=app_database, readonly_url=readonly_url)
    done = _add(db, "analysis", {"sql": "SELECT current_user AS who"})
    drain(instance, platform_resources(app_database, governance_db=db))
    row = task_row(app_database, done)
    assert row.status == "completed", row.error_message
    with (
        pytest.raises(sa.exc.DBAPIError, match=r"permission denied|read-only"),
        read_only_connection(db.engine) as conn,
    ):
        conn.exec_driver_sql("SELECT lo_import('/etc/passwd')")
    make_task_sql_engine(readonly_url).dispose()
    GovernanceDB(url=app_database).engine  # noqa: B018  the registry back to its defaults


def test_reader_role_setup_is_race_safe_across_databases(monkeypatch):
    """Roles are cluster-wide: several databases upgraded at once must all end up granted."""
    role = f"ja_reader_{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(readonly_role, "READER_ROLE", role)
    admin = _pg_admin()
    names = [f"ja_race_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    urls = [make_url(PG_SERVER_URL).set(database=n) for n in names]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(urls))

    def setup(url: sa.URL) -> None:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            barrier.wait()
            outcomes.append(readonly_role.ensure_reader_role(conn))
        engine.dispose()

    threads = [threading.Thread(target=setup, args=(u,)) for u in urls]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert outcomes == [f"task SQL runs as {role} (SELECT on 0 table(s))"] * len(urls)
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


MEMORY_PROBE = """
import json, resource, sys, tracemalloc
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.execution.sql import run_read_only
engine = make_engine(sys.argv[1])
run_read_only(engine, "SELECT 1", {}, 1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
sql = "SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 200000) AS g"
result = run_read_only(engine, sql, {}, 10)
peak = tracemalloc.get_traced_memory()[1]
growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"rows": len(result.rows), "peak": peak, "growth_kb": growth_kb}))
"""


def test_max_rows_bounds_memory_on_postgresql(pg_database_url):
    """200k rows of 1 KB with max_rows=10: neither Python nor libpq holds the whole result."""
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, pg_database_url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    measured = json.loads(probe.stdout.strip().splitlines()[-1])
    assert measured["rows"] == 10
    assert measured["peak"] < 5 * 1024 * 1024, measured
    assert measured["growth_kb"] < 50 * 1024, measured


def test_artifact_is_capped_in_bytes_and_says_why_it_was_truncated(db_url, tmp_path):
    engine = GovernanceDB(url=db_url, sql_max_result_bytes=20_000).engine
    sql = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)"
        " SELECT x, replace(printf('%100s', ''), ' ', 'y') AS pad FROM c"
        if db_url.startswith("sqlite")
        else "SELECT x, repeat('y', 100) AS pad FROM generate_series(1, 1000) AS x"
    )
    result = run_read_only(engine, sql, {}, 10_000)
    artifact = write_query_artifact(result, sql, tmp_path)
    body = json.loads(Path(artifact.uri).read_text())
    assert body["truncated"] and "20000-byte artifact limit" in body["truncated_reason"]
    assert 0 < body["row_count"] < 1000 and len(body["rows"]) == body["row_count"]
    assert artifact.details["row_count"] == body["row_count"] and artifact.details["truncated"]
    assert Path(artifact.uri).stat().st_size < 21_000
    GovernanceDB(url=db_url).engine  # noqa: B018  the registry back to its defaults


def test_runaway_recursive_query_is_stopped_at_the_statement_deadline(db_url):
    engine = GovernanceDB(url=db_url, sql_statement_timeout_s=0.5).engine
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    started = time.monotonic()
    with pytest.raises(TaskRejected, match=r"query exceeded 0\.5 s"):
        run_read_only(engine, endless, {}, 10)
    assert time.monotonic() - started < 10
    assert run_read_only(engine, "SELECT 2 AS two", {}, 10).rows == [[2]]
    with make_engine(db_url).begin() as conn:  # the pooled connection is writable again
        conn.execute(sa.text("UPDATE governance_tasks SET title = 'still writable'"))
    GovernanceDB(url=db_url).engine  # noqa: B018  the registry back to its defaults


def test_colons_in_literals_and_quoted_identifiers_are_not_parameters(governance_db, db_url):
    engine = governance_db.engine
    sql = "SELECT 'a:b' AS \"c:d\", :n AS n, '100%' AS pct, 'x :y' AS lit"
    result = run_read_only(engine, sql, {"n": 5, "unused": 1}, 10)
    assert result.columns == ["c:d", "n", "pct", "lit"]
    assert result.rows == [["a:b", 5, "100%", "x :y"]]
    with pytest.raises(TaskRejected, match="no value in params for :m"):
        run_read_only(engine, "SELECT :m AS m", {}, 10)
    if not db_url.startswith("sqlite"):
        casts = run_read_only(engine, "SELECT '7'::int AS n, (ARRAY[1,2,3])[2:3] AS s", {}, 10)
        assert casts.rows == [[7, [2, 3]]]


def test_query_artifact_is_strict_json_and_keeps_exact_numerics(governance_db, db_url, tmp_path):
    if db_url.startswith("sqlite"):
        sql = "SELECT 9e999 AS inf, -9e999 AS neg, 0.1 AS f"
        expected, decimals = [["Infinity", "-Infinity", 0.1]], []
    else:
        sql = (
            "SELECT 'NaN'::float8 AS nan, 'Infinity'::float8 AS inf,"
            " 12345678901234567890.123456789::numeric AS d, 0.10::numeric AS cents"
        )
        expected, decimals = (
            [["NaN", "Infinity", "12345678901234567890.123456789", "0.10"]],
            [
                "d",
                "cents",
            ],
        )
    result = run_read_only(governance_db.engine, sql, {}, 10)
    artifact = write_query_artifact(result, sql, tmp_path)

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    body = json.loads(Path(artifact.uri).read_text(), parse_constant=refuse)
    assert body["rows"] == expected
    assert body["decimal_columns"] == decimals


def test_dropped_connection_mid_query_is_retried(pg_database_url):
    engine = GovernanceDB(url=pg_database_url).engine
    slow = "SELECT count(*) FROM generate_series(1, 20000) AS a, generate_series(1, 20000) AS b"
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            run_read_only(engine, slow, {}, 10)
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    admin = _pg_admin()
    database = make_url(pg_database_url).database
    deadline = time.monotonic() + 20
    killed = False
    with admin.connect() as conn:
        while not killed and time.monotonic() < deadline:
            killed = bool(
                conn.execute(
                    sa.text(
                        "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = :db AND state = 'active' AND pid <> pg_backend_pid()"
                        " AND query NOT LIKE '%pg_stat_activity%'"
                    ),
                    {"db": database},
                ).scalar()
            )
            time.sleep(0.05)
    worker.join(30)
    admin.dispose()
    assert killed
    assert len(outcome) == 1 and isinstance(outcome[0], RetriableError), outcome
    assert run_read_only(engine, "SELECT 3 AS three", {}, 10).rows == [[3]]


class _PgError(Exception):
    def __init__(self, pgcode: str) -> None:
        super().__init__(f"SQLSTATE {pgcode}")
        self.pgcode = pgcode


@pytest.mark.parametrize(
    ("orig", "transient"),
    [
        (_PgError("08006"), True),  # connection failure
        (_PgError("40001"), True),  # serialization failure
        (_PgError("40P01"), True),  # deadlock
        (_PgError("53300"), True),  # too many connections
        (_PgError("57P01"), True),  # admin shutdown
        (_PgError("55P03"), True),  # lock not available
        (_PgError("42601"), False),  # syntax error
        (_PgError("42501"), False),  # insufficient privilege
        (_PgError("57014"), False),  # query cancelled (our own timeout)
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("no such table: x"), False),
    ],
)
def test_database_errors_are_classified_by_sqlstate(orig, transient):
    assert is_transient(sa.exc.OperationalError("SELECT 1", {}, orig)) is transient


def test_pg_sleep_task_fails_naming_the_function(governance_db, db_url, instance, resources):
    task_id = _add(governance_db, "analysis", {"sql": "SELECT pg_sleep(30)"})
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert row.status == "failed"
    assert "function pg_sleep() is not allowed" in row.error_message

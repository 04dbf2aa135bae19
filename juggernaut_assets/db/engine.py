"""Engines for the governance database, with the per-dialect settings the queue relies on.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE` so that SQLite's single writer is taken up front (no lock upgrades that
deadlock). PostgreSQL URLs are normalised to the psycopg2 driver that dagster-postgres uses.

Task SQL gets its own connections (`read_only_connection`): on PostgreSQL from a separate small
pool whose connections are reset with `DISCARD ALL` when they come back (no advisory lock,
setting, prepared statement or temporary table outlives a task), in a `READ ONLY` transaction
under the SELECT-only role of `readonly_role` — or on the operator's
`JUGGERNAUT_READONLY_DATABASE_URL` — with a statement timeout; on SQLite under
`PRAGMA query_only` with a deadline enforced by a progress handler.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import PoolResetState

from juggernaut_assets.db.readonly_role import READER_ROLE, READONLY_REMEDY

SQLITE_BUSY_TIMEOUT_S = 30
DEFAULT_STATEMENT_TIMEOUT_S = 30.0
DEFAULT_MAX_RESULT_BYTES = 50 * 1024 * 1024
SQLITE_PROGRESS_STEPS = 10_000
"""SQLite virtual-machine steps between two deadline checks (well under a millisecond)."""

CLIENT_CHECK_SINCE = (14,)
CLIENT_CHECK_MS = 1_000
_QUERY_CANCELED = "57014"
_ROLE_UNUSABLE = {"42704", "42501"}  # undefined_object, insufficient_privilege


def normalize_url(url: str) -> str:
    """Accept the URL spellings operators use (`postgres://`, `postgresql://`)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    """The URL without its password, for logs and metadata."""
    return make_url(url).render_as_string(hide_password=True)


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


@lru_cache(maxsize=16)
def make_engine(url: str) -> Engine:
    """One pooled engine per URL and process."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    # executemany (a chunk of outcomes) goes to the server in pages, not one round trip a row.
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        executemany_mode="values_plus_batch",
    )


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@dataclass(frozen=True)
class TaskSqlSettings:
    """How task SQL runs on one governance database (set by the `GovernanceDB` resource)."""

    readonly_url: str | None = None
    """A connection whose role has SELECT rights only; None: the reader role of `db upgrade`."""
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    """Largest query artifact (JSON bytes); rows beyond it are left out, marked truncated."""


_TASK_SQL: dict[str, TaskSqlSettings] = {}


def configure_task_sql(url: str, settings: TaskSqlSettings) -> None:
    """Register how task SQL runs for the governance database at `url`."""
    _TASK_SQL[normalize_url(url)] = settings


def task_sql_settings(engine: Engine) -> TaskSqlSettings:
    """The task-SQL settings registered for the governance `engine` (defaults if none)."""
    return _TASK_SQL.get(engine.url.render_as_string(hide_password=False), TaskSqlSettings())


class ReadOnlyUnavailable(Exception):
    """PostgreSQL has neither a usable read-only role nor a read-only URL: task SQL cannot run."""


class QueryTimeout(Exception):
    """The statement ran past its deadline and was stopped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"query exceeded {seconds:g} s")
        self.seconds = seconds


@lru_cache(maxsize=16)
def make_task_sql_engine(url: str) -> Engine:
    """The pool task SQL uses on PostgreSQL: separate from the queue's, reset on every return."""
    engine = sa.create_engine(normalize_url(url), pool_pre_ping=True, pool_size=2, max_overflow=8)

    @sa.event.listens_for(engine, "reset")
    def _discard_session_state(dbapi_connection, _record, state: PoolResetState) -> None:  # type: ignore[no-untyped-def]
        # An error here makes the pool drop the connection instead of reusing it.
        if state.terminate_only:
            return
        dbapi_connection.rollback()
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("DISCARD ALL")
        finally:
            dbapi_connection.autocommit = False

    return engine


def _postgres_setup(role: str | None, timeout_s: float, server_version: tuple[int, ...]) -> str:
    statements = [
        "SET TRANSACTION READ ONLY",
        f"SET LOCAL statement_timeout = {max(int(timeout_s * 1000), 1)}",
        # The guard tokenises strings the standard way; the server must read them the same way.
        "SET LOCAL standard_conforming_strings = on",
    ]
    if server_version >= CLIENT_CHECK_SINCE:
        # A killed worker's statement stops within a second instead of running to its timeout.
        statements.append(f"SET LOCAL client_connection_check_interval = {CLIENT_CHECK_MS}")
    if role:
        statements.append(f"SET LOCAL ROLE {role}")
    return "; ".join(statements)


@contextlib.contextmanager
def read_only_connection(
    engine: Engine, statement_timeout_s: float | None = None
) -> Iterator[Connection]:
    """A connection for task SQL, in which the database itself refuses every write.

    PostgreSQL: a `READ ONLY` transaction with a statement timeout, as `juggernaut_task_reader`
    (SELECT rights only) or on the registered read-only URL; `ReadOnlyUnavailable` when neither
    can be used. SQLite: `PRAGMA query_only` on a deferred transaction (switched off before the
    connection returns to the pool) and a deadline. A statement past its deadline raises
    `QueryTimeout`.
    """
    settings = task_sql_settings(engine)
    timeout_s = statement_timeout_s or settings.statement_timeout_s
    if is_sqlite(engine):
        with _sqlite_read_only(engine, timeout_s) as conn:
            yield conn
        return
    url = settings.readonly_url or engine.url.render_as_string(hide_password=False)
    role = None if settings.readonly_url else READER_ROLE
    with make_task_sql_engine(url).connect() as conn:
        try:
            version = conn.dialect.server_version_info or ()
            conn.exec_driver_sql(_postgres_setup(role, timeout_s, version))
        except sa.exc.DBAPIError as exc:
            if role and getattr(exc.orig, "pgcode", None) in _ROLE_UNUSABLE:
                reason = str(exc.orig).strip().splitlines()[0]
                raise ReadOnlyUnavailable(
                    f"task SQL needs a read-only database role ({reason}): {READONLY_REMEDY}"
                ) from None
            raise
        try:
            yield conn
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) == _QUERY_CANCELED:
                raise QueryTimeout(timeout_s) from exc
            raise


@contextlib.contextmanager
def _sqlite_read_only(engine: Engine, timeout_s: float) -> Iterator[Connection]:
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        raw = conn.connection.driver_connection
        deadline = time.monotonic() + timeout_s
        raw.set_progress_handler(lambda: time.monotonic() > deadline, SQLITE_PROGRESS_STEPS)
        try:
            conn.exec_driver_sql("PRAGMA query_only = ON")
            yield conn
        except sa.exc.OperationalError as exc:
            if time.monotonic() > deadline and "interrupted" in str(exc.orig):
                raise QueryTimeout(timeout_s) from exc
            raise
        finally:
            raw.set_progress_handler(None, 0)
            conn.rollback()
            conn.exec_driver_sql("PRAGMA query_only = OFF")
            conn.rollback()

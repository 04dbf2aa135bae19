"""Engines for the governance database, with the per-dialect settings the queue relies on.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE` so that SQLite's single writer is taken up front (no lock upgrades that
deadlock). PostgreSQL URLs are normalised to the psycopg2 driver that dagster-postgres uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

SQLITE_BUSY_TIMEOUT_S = 30


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
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextlib.contextmanager
def read_only_connection(
    engine: Engine, statement_timeout_ms: int = 30_000
) -> Iterator[Connection]:
    """A connection in which the database itself refuses every write.

    PostgreSQL: a `READ ONLY` transaction with a statement timeout, rolled back at the end.
    SQLite: `PRAGMA query_only` on a deferred transaction, switched off before the connection
    returns to the pool.
    """
    if is_sqlite(engine):
        with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            try:
                conn.exec_driver_sql("PRAGMA query_only = ON")
                yield conn
            finally:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA query_only = OFF")
                conn.rollback()
        return
    with engine.connect() as conn, conn.begin() as tx:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        yield conn
        tx.rollback()

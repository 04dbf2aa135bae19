"""The governance database as a Dagster resource."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import pydantic
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from juggernaut_assets.db.engine import (
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_STATEMENT_TIMEOUT_S,
    TaskSqlSettings,
    configure_task_sql,
    make_engine,
    read_only_connection,
    redact_url,
)


class GovernanceDB(dg.ConfigurableResource):
    """JUGGERNAUT's governance database (tasks, artifacts, tool calls, PRs, experiments).

    `url` is a SQLAlchemy URL, bound from `JUGGERNAUT_DATABASE_URL` (or production's
    `DATABASE_URL`) in `definitions.py`; by default an embedded SQLite file. PostgreSQL URLs
    use psycopg2 (`postgresql://` and `postgres://` are normalised to `postgresql+psycopg2://`).

    Task SQL (`analysis`/`database` tasks, the `database` tool) runs with SELECT rights only: on
    `readonly_url` (`JUGGERNAUT_READONLY_DATABASE_URL`) when given, else on PostgreSQL as the
    read-only role `juggernaut db upgrade` creates; each statement stops after
    `sql_statement_timeout_s`, and a result stops growing at `sql_max_result_bytes` of JSON.
    """

    url: str
    readonly_url: str | None = None
    sql_statement_timeout_s: float = pydantic.Field(default=DEFAULT_STATEMENT_TIMEOUT_S, gt=0)
    sql_max_result_bytes: int = pydantic.Field(default=DEFAULT_MAX_RESULT_BYTES, gt=0)

    @property
    def engine(self) -> Engine:
        """The pooled engine; task SQL run through it gets this resource's read-only settings."""
        configure_task_sql(
            self.url,
            TaskSqlSettings(
                readonly_url=self.readonly_url or None,
                statement_timeout_s=self.sql_statement_timeout_s,
                max_result_bytes=self.sql_max_result_bytes,
            ),
        )
        return make_engine(self.url)

    @property
    def display_url(self) -> str:
        """The URL with its password hidden: safe for logs and metadata."""
        return redact_url(self.url)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextlib.contextmanager
    def read_only(self) -> Iterator[Connection]:
        """A connection in which the database refuses writes (see `read_only_connection`)."""
        with read_only_connection(self.engine) as conn:
            yield conn

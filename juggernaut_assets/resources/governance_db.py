"""The governance database as a Dagster resource."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from juggernaut_assets.db.engine import make_engine, read_only_connection, redact_url


class GovernanceDB(dg.ConfigurableResource):
    """JUGGERNAUT's governance database (tasks, artifacts, tool calls, PRs, experiments).

    `url` is a SQLAlchemy URL, bound from `JUGGERNAUT_DATABASE_URL` (or production's
    `DATABASE_URL`) in `definitions.py`; by default an embedded SQLite file. PostgreSQL URLs
    use psycopg2 (`postgresql://` and `postgres://` are normalised to `postgresql+psycopg2://`).
    """

    url: str

    @property
    def engine(self) -> Engine:
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

"""Throwaway PostgreSQL databases on the local server for benchmarks."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get(
    "JUGGERNAUT_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def temporary_database(prefix: str) -> Iterator[str]:
    """Create a database, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

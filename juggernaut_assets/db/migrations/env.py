"""Alembic environment: runs on the connection that `juggernaut db upgrade` hands over."""

from __future__ import annotations

from alembic import context

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    with make_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        _run(conn)
        conn.commit()

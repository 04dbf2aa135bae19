"""`juggernaut db upgrade`: run the Alembic migrations on the governance database.

On PostgreSQL it then sets up the read-only role task SQL runs as (`readonly_role`), in a
transaction of its own so that the cluster-wide role catalogue is not held during migrations.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from juggernaut_assets.db.engine import make_engine, redact_url
from juggernaut_assets.db.readonly_role import ensure_reader_role
from juggernaut_assets.db.rollups import install_rollups
from juggernaut_assets.db.schema import ensure_schema

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> str:
    """Migrate to the newest revision and grant task SQL its read rights; idempotent."""
    config = alembic_config(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One upgrader at a time (two `db upgrade` racing would both try to add a column).
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        # Also when Alembic was already at head: whatever is missing is recreated.
        ensure_schema(conn)
        install_rollups(conn)
    message = f"governance schema is at head on {redact_url(url)}"
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            message += f"; {ensure_reader_role(conn)}"
    return message

"""`juggernaut db upgrade`: run the Alembic migrations on the governance database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from juggernaut_assets.db.engine import make_engine, redact_url
from juggernaut_assets.db.rollups import install_rollups
from juggernaut_assets.db.schema import ensure_schema

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> str:
    """Migrate to the newest revision; safe to run any number of times."""
    config = alembic_config(url)
    with make_engine(url).begin() as conn:
        if conn.dialect.name == "postgresql":
            # One upgrader at a time (two `db upgrade` racing would both try to add a column).
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        # Also when Alembic was already at head: whatever is missing is recreated.
        ensure_schema(conn)
        install_rollups(conn)
    return f"governance schema is at head on {redact_url(url)}"

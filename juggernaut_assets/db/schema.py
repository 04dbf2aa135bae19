"""Additive schema reconciliation: create what is missing, never drop, rename or rewrite.

The target may be the production JUGGERNAUT database, which has these tables already (with
many more columns than we model) and no Alembic history. So every migration step here is
idempotent: a table that is missing is created, a column that is missing is added (nullable),
an index that is missing is created. Existing tables, columns, types and rows are left alone.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from juggernaut_assets.db.enums import PRIORITY_ORDER
from juggernaut_assets.db.models import metadata

log = logging.getLogger(__name__)


def _ensure_priority_enum(conn: Connection) -> None:
    exists = conn.execute(sa.text("SELECT 1 FROM pg_type WHERE typname = 'task_priority'")).scalar()
    if not exists:
        labels = ", ".join(f"'{label}'" for label in PRIORITY_ORDER)
        conn.execute(sa.text(f"CREATE TYPE task_priority AS ENUM ({labels})"))


def _add_missing_columns(conn: Connection, table: sa.Table, existing: set[str]) -> list[str]:
    added = []
    preparer = conn.dialect.identifier_preparer
    for column in table.columns:
        if column.name in existing:
            continue
        ddl_type = column.type.compile(dialect=conn.dialect)
        conn.execute(
            sa.text(
                f"ALTER TABLE {preparer.quote(table.name)} "
                f"ADD COLUMN {preparer.quote(column.name)} {ddl_type}"
            )
        )
        added.append(f"{table.name}.{column.name}")
    return added


def _create_missing_indexes(conn: Connection, table: sa.Table, existing: set[str]) -> list[str]:
    created = []
    for index in table.indexes:
        if index.name in existing:
            continue
        savepoint = conn.begin_nested()
        try:
            index.create(conn)
            savepoint.commit()
            created.append(str(index.name))
        except sa.exc.IntegrityError as exc:
            savepoint.rollback()
            log.warning(
                "index %s not created: existing rows violate it (%s); fix the rows and run "
                "`juggernaut db upgrade` again",
                index.name,
                exc.orig,
            )
    return created


def ensure_schema(conn: Connection) -> list[str]:
    """Bring the governance schema up to the models, additively. Returns what was changed."""
    changes: list[str] = []
    if conn.dialect.name == "postgresql":
        _ensure_priority_enum(conn)
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            table.create(conn)
            changes.append(f"created table {table.name}")
            continue
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        changes += [f"added column {c}" for c in _add_missing_columns(conn, table, columns)]
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        indexes |= {c["name"] for c in inspector.get_unique_constraints(table.name)}
        changes += [f"created index {i}" for i in _create_missing_indexes(conn, table, indexes)]
    return changes

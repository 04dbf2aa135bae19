"""The PostgreSQL role task SQL runs as: `juggernaut_task_reader`, NOLOGIN, SELECT rights only.

`juggernaut db upgrade` creates it where the connecting role may (superuser or CREATEROLE),
grants it USAGE on the schema and SELECT on `READABLE_TABLES` of this database, and makes the
application's role a member so that a read-only connection can `SET LOCAL ROLE` to it. A
statement run under it cannot read server files, signal other backends, export large objects
or reload the configuration: those need rights the role does not have.

Roles are cluster-wide while grants are per database, and several databases on one server may
be upgraded at once (one per test worker): creating the role and granting its membership are
each done in a savepoint, and losing the race to another database (duplicate object or key)
counts as done.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

READER_ROLE = "juggernaut_task_reader"

READABLE_TABLES = (
    "governance_tasks",
    "task_artifacts",
    "tool_calls",
    "pr_tracking",
    "experiments",
    "experiment_variants",
    "experiment_metric_points",
    "experiment_metric_sums",
    "audit_reports",
    "domain_checks",
    "spend_ledger",
)
"""The governance tables tasks may read (those that exist are granted). Left out on purpose:
`email_suppressions` (people's addresses, which no analysis needs), `alembic_version`, and every
table of a shared production database that is not the platform's (`tool_executions`, …). The
payloads and tool-call arguments in these tables hold no secrets: secrets come from named
credentials in the environment, and tool-call arguments are stored redacted."""

_RACE_LOST = {"42710", "23505"}  # duplicate_object, unique_violation (concurrent CREATE ROLE)
_NO_PRIVILEGE = "42501"

READONLY_REMEDY = (
    f"run `juggernaut db upgrade` as a role with CREATEROLE (or a superuser) so that it creates "
    f"the read-only role {READER_ROLE}, or set JUGGERNAUT_READONLY_DATABASE_URL to a connection "
    "whose role has only SELECT rights"
)


def ensure_reader_role(conn: Connection) -> str:
    """Create the reader role if possible and grant it read access here; say what was done."""
    if not _role_exists(conn) and not _create_role(conn):
        return (
            f"read-only role {READER_ROLE} is missing and could not be created: {READONLY_REMEDY}"
        )
    tables = _existing(conn, READABLE_TABLES)
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    grants = [f'GRANT USAGE ON SCHEMA "{schema}" TO {READER_ROLE}']
    grants += [f'GRANT SELECT ON "{schema}"."{t}" TO {READER_ROLE}' for t in tables]
    refused = [g for g in grants if not _in_savepoint(conn, g)]
    if refused:
        return (
            f"read-only role {READER_ROLE} could not be granted read access "
            f"({len(refused)} grant(s) refused, e.g. {refused[0]}; the owner of the tables must "
            "grant them)"
        )
    if not _is_member(conn) and not _grant_membership(conn):
        return (
            f"read-only role {READER_ROLE} exists but {_current_user(conn)} may not use it "
            f"(GRANT {READER_ROLE} TO {_current_user(conn)} as an administrator): "
            f"{READONLY_REMEDY}"
        )
    return f"task SQL runs as {READER_ROLE} (SELECT on {len(tables)} table(s))"


def _role_exists(conn: Connection) -> bool:
    found = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": READER_ROLE})
    return found.first() is not None


def _is_member(conn: Connection) -> bool:
    query = sa.text("SELECT pg_has_role(current_user, :r, 'MEMBER')")
    return bool(conn.execute(query, {"r": READER_ROLE}).scalar_one())


def _current_user(conn: Connection) -> str:
    return conn.exec_driver_sql("SELECT current_user").scalar_one()


def _existing(conn: Connection, tables: tuple[str, ...]) -> list[str]:
    query = sa.text(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = ANY(:names)"
    )
    present = set(conn.execute(query, {"names": list(tables)}).scalars())
    return [t for t in tables if t in present]


def _create_role(conn: Connection) -> bool:
    return _in_savepoint(
        conn, f"CREATE ROLE {READER_ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
    )


def _grant_membership(conn: Connection) -> bool:
    return _in_savepoint(conn, f"GRANT {READER_ROLE} TO CURRENT_USER")


def _in_savepoint(conn: Connection, statement: str) -> bool:
    """Run one role statement; True if it took effect here or in a concurrent transaction."""
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        code = getattr(exc.orig, "pgcode", None)
        if code in _RACE_LOST:
            return True
        if code == _NO_PRIVILEGE:
            log.warning("%s: %s", statement, str(exc.orig).strip().splitlines()[0])
            return False
        raise
    savepoint.commit()
    return True

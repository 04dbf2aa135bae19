"""Which database errors are worth a retry: the connection or the server, not the statement.

PostgreSQL, by SQLSTATE: class 08 (connection exception), 40 (transaction rollback:
serialization failure, deadlock), 53 (insufficient resources), 57P01-57P03 (admin shutdown,
crash shutdown, cannot connect now), 55P03 (lock not available); also any error after which
SQLAlchemy invalidated the connection (the server closed it), and driver errors without a
SQLSTATE (the client could not reach the server). SQLite: a locked or busy database, and I/O
errors opening the file. Everything else (syntax, privileges, missing tables) is the statement's
fault and will fail again.
"""

from __future__ import annotations

import sqlalchemy as sa

RETRIABLE_SQLSTATE_CLASSES = ("08", "40", "53")
RETRIABLE_SQLSTATES = {"57P01", "57P02", "57P03", "55P03"}
RETRIABLE_SQLITE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "unable to open database file",
)


def is_transient(exc: sa.exc.DBAPIError) -> bool:
    """True when the same statement may well succeed on a later attempt."""
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "pgcode", None)
    if code:
        return code[:2] in RETRIABLE_SQLSTATE_CLASSES or code in RETRIABLE_SQLSTATES
    message = str(exc.orig).lower()
    if type(exc.orig).__module__.startswith("sqlite3"):
        return any(m in message for m in RETRIABLE_SQLITE_MESSAGES)
    return isinstance(exc, sa.exc.OperationalError)

"""Read-only SQL for `analysis`/`database` tasks and the `database` tool.

Two layers. sqlglot refuses anything but one read statement calling pure functions
(`lib/sql_guard.py`), with a clear message for a person; and the database itself gives the
statement SELECT rights only (`db/engine.py` `read_only_connection`: a `READ ONLY` transaction
as the reader role or on the operator's read-only URL on PostgreSQL, `PRAGMA query_only` on
SQLite), so a statement the guard lets through still cannot change a row or touch the server.

Bounded: rows are streamed (a server-side cursor on PostgreSQL) and stop at `max_rows` or at
the byte cap of the artifact, whichever comes first (`truncated` says so, and why); every
statement has a deadline. Exact: the artifact is strict JSON, numerics keep every digit
(`lib/query_json.py`).
"""

from __future__ import annotations

import decimal
import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from upath import UPath

from juggernaut_assets.db.engine import (
    QueryTimeout,
    ReadOnlyUnavailable,
    TaskSqlSettings,
    is_sqlite,
    read_only_connection,
    task_sql_settings,
)
from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.errors import is_transient
from juggernaut_assets.db.readonly_role import READABLE_TABLES, READER_ROLE
from juggernaut_assets.execution.outcome import (
    Artifact,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.execution.verify import file_sha256
from juggernaut_assets.lib.artifact_store import make_dirs
from juggernaut_assets.lib.query_json import encode_row
from juggernaut_assets.lib.sql_guard import UnsafeSql, check_read_only_sql
from juggernaut_assets.lib.sql_params import SqlParamError, render_for_driver

FETCH_BATCH = 1_000
_INSUFFICIENT_PRIVILEGE = "42501"


def check_read_only(sql: str, dialect: str) -> None:
    """Raise `TaskRejected` unless `sql` is exactly one statement that only reads."""
    try:
        check_read_only_sql(sql, dialect)
    except UnsafeSql as exc:
        raise TaskRejected(str(exc)) from None


@dataclass(frozen=True)
class QueryResult:
    """The first rows of a result, each already encoded as strict JSON."""

    columns: list[str]
    row_json: list[str]
    truncated: bool
    truncated_reason: str | None = None
    decimal_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[list[Any]]:
        """The rows as JSON values (decimals as strings, see `lib/query_json.py`)."""
        return [json.loads(r) for r in self.row_json]

    @property
    def row_count(self) -> int:
        return len(self.row_json)


def run_read_only(engine: Engine, sql: str, params: dict[str, Any], max_rows: int) -> QueryResult:
    """Run one checked read statement with SELECT rights only, bounded in rows, bytes and time."""
    dialect = engine.dialect.name
    check_read_only(sql, dialect)
    try:
        text, values = render_for_driver(sql, dialect, params)
    except SqlParamError as exc:
        raise TaskRejected(f"SQL parameters: {exc}") from None
    settings = task_sql_settings(engine)
    options = {} if is_sqlite(engine) else {"stream_results": True, "max_row_buffer": FETCH_BATCH}
    try:
        with read_only_connection(engine) as conn:
            cursor = conn.exec_driver_sql(text, values, execution_options=options)
            return _collect(cursor, max_rows, settings)
    except ReadOnlyUnavailable as exc:
        raise TaskBlocked(str(exc)) from None
    except QueryTimeout as exc:
        raise TaskRejected(f"{exc}: the statement was stopped") from None
    except sa.exc.DBAPIError as exc:
        if is_transient(exc):
            raise RetriableError(f"database unavailable: {_first_line(exc.orig)}") from None
        raise TaskRejected(_refusal(exc, engine, settings.readonly_url)) from None
    except sa.exc.StatementError as exc:
        raise TaskRejected(f"the database refused the query: {_first_line(exc.orig)}") from None


def _collect(cursor: CursorResult[Any], max_rows: int, settings: TaskSqlSettings) -> QueryResult:
    """Fetch in batches up to `max_rows` rows or the byte cap; the deadline covers every fetch."""
    columns = list(cursor.keys())
    max_bytes = settings.max_result_bytes
    deadline = time.monotonic() + settings.statement_timeout_s
    rows: list[str] = []
    decimals: set[int] = set()
    size = 0
    reason = None
    while reason is None:
        batch = cursor.fetchmany(min(FETCH_BATCH, max_rows + 1 - len(rows)))
        if not batch:
            break
        for row in batch:
            if len(rows) == max_rows:
                reason = f"more than max_rows={max_rows} rows"
                break
            encoded = encode_row(list(row))
            if size + len(encoded) + 1 > max_bytes:
                reason = f"result larger than the {max_bytes}-byte artifact limit"
                break
            size += len(encoded) + 1
            rows.append(encoded)
            decimals.update(i for i, v in enumerate(row) if isinstance(v, decimal.Decimal))
        if reason is None and time.monotonic() > deadline:
            raise QueryTimeout(settings.statement_timeout_s)
    return QueryResult(
        columns,
        rows,
        truncated=reason is not None,
        truncated_reason=reason,
        decimal_columns=[columns[i] for i in sorted(decimals)],
    )


def _refusal(exc: sa.exc.DBAPIError, engine: Engine, readonly_url: str | None) -> str:
    message = f"the database refused the query: {_first_line(exc.orig)}"
    code = getattr(exc.orig, "pgcode", None)
    if code == _INSUFFICIENT_PRIVILEGE and not is_sqlite(engine) and not readonly_url:
        message += (
            f" (task SQL runs as {READER_ROLE}, which may read {', '.join(READABLE_TABLES)}; "
            "`juggernaut db upgrade` grants them on this database)"
        )
    return message


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error else "unknown error"


def write_query_artifact(result: QueryResult, sql: str, directory: UPath) -> Artifact:
    """Store the result as a strict-JSON file (local or in an object store) and describe it
    as a `query_result` artifact."""
    make_dirs(directory)
    path = directory / "query_result.json"
    head = {
        "sql": sql,
        "columns": result.columns,
        "row_count": result.row_count,
        "truncated": result.truncated,
        "truncated_reason": result.truncated_reason,
        "decimal_columns": result.decimal_columns,
    }
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(head, allow_nan=False)[:-1])
        out.write(', "rows": [')
        for i, row in enumerate(result.row_json):
            out.write(f",{row}" if i else row)
        out.write("]}")
    return Artifact(
        kind=ArtifactKind.QUERY_RESULT,
        uri=str(path),
        sha256=file_sha256(path),
        details={
            "row_count": result.row_count,
            "columns": result.columns,
            "truncated": result.truncated,
            "truncated_reason": result.truncated_reason,
            "decimal_columns": result.decimal_columns,
            "bytes": path.stat().st_size,
        },
    )

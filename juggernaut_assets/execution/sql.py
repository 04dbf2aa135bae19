"""Read-only SQL for `analysis`/`database` tasks and the `database` tool.

Two layers: sqlglot rejects anything but one read statement before it reaches the database
(a clear message for a person), and the database itself refuses writes (a `READ ONLY`
transaction on PostgreSQL, `PRAGMA query_only` on SQLite), so a statement sqlglot lets through
still cannot change a row.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlalchemy.engine import Engine
from sqlglot import exp

from juggernaut_assets.db.engine import read_only_connection
from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import Artifact, RetriableError, TaskRejected
from juggernaut_assets.execution.verify import file_sha256

_WRITES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Command,
)
_READS = (exp.Select, exp.SetOperation)
_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite"}


def check_read_only(sql: str, dialect: str) -> None:
    """Raise `TaskRejected` unless `sql` is exactly one statement that only reads."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=_DIALECTS.get(dialect)) if s]
    except sqlglot.errors.ParseError as exc:
        raise TaskRejected(_parse_error_message(exc)) from None
    if len(statements) != 1:
        raise TaskRejected(f"exactly one SQL statement is allowed, got {len(statements)}")
    statement = statements[0]
    write = next(iter(statement.find_all(*_WRITES)), None)
    if write is not None or not isinstance(statement, _READS):
        kind = (write or statement).key.upper()
        raise TaskRejected(f"read-only task: {kind} statements are not allowed, only SELECT")


def _parse_error_message(exc: sqlglot.errors.ParseError) -> str:
    if not exc.errors:
        return f"SQL does not parse: {exc}"
    first = exc.errors[0]
    near = f"{first.get('start_context', '')}{first.get('highlight', '')}".strip()
    return (
        f"SQL does not parse: unexpected '{first.get('highlight', '')}' at line "
        f"{first.get('line')}, column {first.get('col')} (after '{near}')"
    )


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


def run_read_only(engine: Engine, sql: str, params: dict[str, Any], max_rows: int) -> QueryResult:
    """Run one checked read statement in a connection where the database refuses writes."""
    check_read_only(sql, engine.dialect.name)
    try:
        with read_only_connection(engine) as conn:
            cursor = conn.execute(sa.text(sql), params)
            columns = list(cursor.keys())
            rows = [list(r) for r in cursor.fetchmany(max_rows + 1)]
    except sa.exc.OperationalError as exc:
        if "timeout" in str(exc.orig).lower() or "could not connect" in str(exc.orig).lower():
            raise RetriableError(f"database unavailable: {_first_line(exc.orig)}") from None
        raise TaskRejected(f"the database refused the query: {_first_line(exc.orig)}") from None
    except sa.exc.StatementError as exc:
        raise TaskRejected(f"the database refused the query: {_first_line(exc.orig)}") from None
    return QueryResult(columns, rows[:max_rows], truncated=len(rows) > max_rows)


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error else "unknown error"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def write_query_artifact(result: QueryResult, sql: str, directory: Path) -> Artifact:
    """Store the result as a JSON file and describe it as a `query_result` artifact."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "query_result.json"
    body = {
        "sql": sql,
        "columns": result.columns,
        "row_count": len(result.rows),
        "truncated": result.truncated,
        "rows": result.rows,
    }
    path.write_text(json.dumps(body, default=_json_default))
    return Artifact(
        kind=ArtifactKind.QUERY_RESULT,
        uri=str(path),
        sha256=file_sha256(path),
        details={
            "row_count": len(result.rows),
            "columns": result.columns,
            "truncated": result.truncated,
        },
    )

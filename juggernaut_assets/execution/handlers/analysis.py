"""`analysis` / `database` (and aliases): run the payload's SQL read-only, keep the result.

The SQL runs with SELECT rights only (see `execution/sql.py`): refused by the guard, blocked when
PostgreSQL has no read-only role or URL, retried when the connection dropped.
"""

from __future__ import annotations

from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import HandlerResult
from juggernaut_assets.execution.sql import run_read_only, write_query_artifact
from juggernaut_assets.tasks.payloads import QueryPayload, validate_payload


def run_query_task(ctx: TaskContext) -> HandlerResult:
    payload = validate_payload(QueryPayload, ctx.payload)
    result = run_read_only(ctx.engine, payload.sql, payload.params, payload.max_rows)
    artifact = write_query_artifact(result, payload.sql, ctx.artifacts_dir)
    more = f" (truncated: {result.truncated_reason})" if result.truncated else ""
    return HandlerResult(
        artifacts=[artifact],
        summary=f"query returned {result.row_count} row(s){more}, {len(result.columns)} column(s)",
    )

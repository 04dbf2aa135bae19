"""The `database` tool: one read-only query on the governance database, stored as a file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from juggernaut_assets.execution.outcome import TaskRejected
from juggernaut_assets.execution.sql import run_read_only, write_query_artifact
from juggernaut_assets.execution.tools.base import ToolOutput
from juggernaut_assets.tasks.payloads import PayloadError, QueryPayload, validate_payload

if TYPE_CHECKING:
    from juggernaut_assets.execution.tools.toolbox import ToolBox


def database_tool(args: dict[str, Any], box: ToolBox) -> ToolOutput:
    try:
        query = validate_payload(QueryPayload, args)
    except PayloadError as exc:
        raise TaskRejected(f"database step: {exc}") from None
    result = run_read_only(box.engine, query.sql, query.params, query.max_rows)
    step_dir = box.artifacts_dir / f"step-{box.next_step()}"
    artifact = write_query_artifact(result, query.sql, step_dir)
    return ToolOutput(
        success=True,
        result={
            "row_count": result.row_count,
            "columns": result.columns,
            "truncated": result.truncated,
        },
        artifacts=[artifact],
    )

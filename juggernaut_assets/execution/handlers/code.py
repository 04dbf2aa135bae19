"""`code` (and `code_fix`, `code_change`, `code_implementation`): changes as pull requests."""

from __future__ import annotations

from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import HandlerResult, TaskBlocked
from juggernaut_assets.tasks.payloads import CodePayload, validate_payload

GITHUB_NOT_CONFIGURED = "GITHUB_TOKEN is not configured"


def run_code_task(ctx: TaskContext) -> HandlerResult:
    validate_payload(CodePayload, ctx.payload)
    if not ctx.github.configured:
        raise TaskBlocked(GITHUB_NOT_CONFIGURED)
    raise TaskBlocked("opening pull requests is being built in the code-task issue")

"""`workflow`: explicit steps, each a call of a registered tool, run in order.

A step that fails stops the workflow; the task fails or retries according to the failure
(a 5xx or timeout retries, bad arguments or a 4xx do not). Steps that already ran are not
undone, and a retry runs the workflow from its first step again: write steps that are safe to
repeat, or split them into dependent tasks.
"""

from __future__ import annotations

from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import HandlerResult, TaskRejected
from juggernaut_assets.tasks.payloads import WorkflowPayload, validate_payload


def run_workflow_task(ctx: TaskContext) -> HandlerResult:
    payload = validate_payload(WorkflowPayload, ctx.payload)
    if not payload.steps:
        raise TaskRejected("workflow has no steps: nothing to do, so nothing can be completed")
    artifacts = []
    for number, step in enumerate(payload.steps, start=1):
        try:
            output = ctx.tools.call(step.tool, step.args, step=number)
        except Exception as exc:
            exc.args = (f"step {number} of {len(payload.steps)} ({step.tool}): {exc}",)
            raise
        artifacts.extend(output.artifacts)
    tools = ", ".join(step.tool for step in payload.steps)
    return HandlerResult(artifacts=artifacts, summary=f"ran {len(payload.steps)} step(s): {tools}")

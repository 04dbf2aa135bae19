"""`scan`: materialise the asset named in the payload and record that materialisation."""

from __future__ import annotations

from juggernaut_assets import settings
from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import Artifact, HandlerResult, TaskBlocked
from juggernaut_assets.tasks.payloads import ScanPayload, validate_payload


def run_scan_task(ctx: TaskContext) -> HandlerResult:
    payload = validate_payload(ScanPayload, ctx.payload)
    if ctx.materialize is None:
        raise TaskBlocked("scan tasks run inside a Dagster run; none is available here")
    run_id = ctx.materialize(payload.asset, payload.partition, ctx.task_id)
    where = f" partition {payload.partition}" if payload.partition else ""
    return HandlerResult(
        artifacts=[
            Artifact(
                kind=ArtifactKind.ASSET_MATERIALIZATION,
                uri=f"{settings.dagster_ui_url()}/runs/{run_id}",
                external_id=run_id,
                details={"asset": payload.asset, "partition": payload.partition},
            )
        ],
        summary=f"materialised {payload.asset}{where} in run {run_id}",
    )

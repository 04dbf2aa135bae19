"""`task_runs`: one dynamic partition per task, one event per attempt's outcome.

The executor reports each task it carried out as an event on this asset, keyed by task id: a
materialisation when the task completed (or is waiting on its pull request) with its verified
artifacts, an observation for every other ending with the reason. An operator opens the asset,
picks a task id, and sees what the task produced, with links.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from juggernaut_assets.execution.outcome import Artifact, Ending, TaskOutcome

TASK_PARTITIONS = dg.DynamicPartitionsDefinition(name="task_runs")

task_runs = dg.AssetSpec(
    key="task_runs",
    partitions_def=TASK_PARTITIONS,
    group_name="tasks",
    description=__doc__,
    metadata={"partition_retention": "newest tasks kept; see TaskQueueResource"},
)

_MATERIALIZED = (Ending.COMPLETED, Ending.AWAITING)


def _link(artifact: Artifact) -> dg.MetadataValue:
    uri = artifact.uri or ""
    if uri.startswith(("http://", "https://")):
        return dg.MetadataValue.url(uri)
    if uri:
        return dg.MetadataValue.path(uri)
    return dg.MetadataValue.text(uri or artifact.external_id or "")


def _artifact_table(artifacts: list[Artifact]) -> str:
    rows = ["| kind | where | verified | details |", "| --- | --- | --- | --- |"]
    for a in artifacts:
        where = a.uri or a.external_id or ""
        if where.startswith(("http://", "https://")):
            where = f"[{where}]({where})"
        detail = ", ".join(
            f"{k}={v}" for k, v in a.details.items() if k in ("row_count", "status_code", "asset")
        )
        rows.append(f"| {a.kind} | {where} | {a.verification_detail or 'no'} | {detail} |")
    return "\n".join(rows)


def task_event(outcome: TaskOutcome) -> dg.AssetMaterialization | dg.AssetObservation:
    """The Dagster event that shows this outcome on the task's partition."""
    metadata: dict[str, Any] = {
        "task_id": outcome.task_id,
        "task_type": outcome.task_type,
        "status": str(outcome.next_status or outcome.ending),
        "attempt": outcome.attempt,
        "duration_s": round(outcome.duration_s, 4),
        "summary" if outcome.ending in _MATERIALIZED else "error": outcome.message,
    }
    if outcome.artifacts:
        metadata["artifacts"] = dg.MetadataValue.md(_artifact_table(outcome.artifacts))
        for number, artifact in enumerate(outcome.artifacts, start=1):
            metadata[f"artifact_{number}_{artifact.kind}"] = _link(artifact)
    event_type = dg.AssetMaterialization if outcome.ending in _MATERIALIZED else dg.AssetObservation
    return event_type(asset_key=task_runs.key, partition=outcome.task_id, metadata=metadata)

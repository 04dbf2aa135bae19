"""Materialising an asset for a `scan` task, inside the executor's Dagster instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from juggernaut_assets.execution.context import Materializer
from juggernaut_assets.execution.outcome import RetriableError, TaskRejected

TASK_TAG = "juggernaut/task_id"


def _partition_key(
    asset: dg.AssetsDefinition, partition: str | None, instance: dg.DagsterInstance
) -> str | None:
    partitions = asset.partitions_def
    if partitions is None:
        if partition:
            raise TaskRejected(f"asset {asset.key.to_user_string()} is not partitioned")
        return None
    keys = partitions.get_partition_keys(dynamic_partitions_store=instance)
    if partition is None:
        if not keys:
            raise TaskRejected(f"asset {asset.key.to_user_string()} has no partitions yet")
        return keys[-1]
    if partition not in keys:
        raise TaskRejected(
            f"'{partition}' is not a partition of {asset.key.to_user_string()} "
            f"(e.g. {keys[-1] if keys else 'none'})"
        )
    return partition


def materializer_for(
    instance: dg.DagsterInstance, resources: Mapping[str, Any] | None = None
) -> Materializer:
    """A function that materialises one asset of this code location in `instance`.

    `resources` override the code location's (the executor passes its own governance
    database, so the scan reads and writes the database its task lives in).
    """

    def materialize(asset_name: str, partition: str | None, task_id: str) -> str:
        from juggernaut_assets.definitions import defs

        key = dg.AssetKey.from_user_string(asset_name)
        graph = defs.resolve_asset_graph()
        if key not in graph.materializable_asset_keys:
            names = sorted(k.to_user_string() for k in graph.materializable_asset_keys)
            raise TaskRejected(
                f"unknown asset '{asset_name}'; scannable assets: {', '.join(names)}"
            )
        asset = defs.resolve_assets_def(key)
        result = dg.materialize(
            assets=[a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)],
            selection=[key],
            partition_key=_partition_key(asset, partition, instance),
            instance=instance,
            resources={**defs.resources, **(resources or {})},
            raise_on_error=False,
            tags={TASK_TAG: task_id},
        )
        if not result.success:
            raise RetriableError(f"materialising {asset_name} failed in run {result.run_id}")
        return result.run_id

    return materialize

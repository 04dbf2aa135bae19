"""`governance_tables_sensor`: the governance tables, as the external assets they are, observed.

Nothing in this code location materialises `governance_tasks`, `task_artifacts` or
`experiment_metric_points` (people and other systems write them), so their asset pages would
stay empty. Every minute this sensor counts their rows (tasks by status, artifacts by kind)
and, when a count changed, records an observation of that table with the counts as metadata:
the asset page then shows when the table last changed and what it held. A tick that sees no
change says so.
"""

from __future__ import annotations

import json

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.assets.governance import (
    experiment_metric_points,
    governance_tasks,
    task_artifacts,
)
from juggernaut_assets.db.models import ExperimentMetricPoint, GovernanceTask, TaskArtifact
from juggernaut_assets.lib.ui_text import ui_description
from juggernaut_assets.resources.governance_db import GovernanceDB

GROUPED_BY: dict[dg.AssetKey, tuple[sa.Table, str | None]] = {
    governance_tasks.key: (GovernanceTask.__table__, "status"),
    task_artifacts.key: (TaskArtifact.__table__, "kind"),
    experiment_metric_points.key: (ExperimentMetricPoint.__table__, None),
}


def table_counts(engine: Engine) -> dict[str, dict[str, int]]:
    """Per table, its row count per group (`{"": n}` for a table counted as a whole)."""
    counts: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for key, (table, column) in GROUPED_BY.items():
            if column is None:
                rows = [("", conn.execute(sa.select(sa.func.count()).select_from(table)).scalar())]
            else:
                group = table.c[column]
                rows = conn.execute(sa.select(group, sa.func.count()).group_by(group)).all()
            counts[key.to_user_string()] = {str(g or ""): int(n) for g, n in rows}
    return counts


def observation(key: str, counts: dict[str, int]) -> dg.AssetObservation:
    _, column = GROUPED_BY[dg.AssetKey(key)]
    metadata: dict[str, dg.RawMetadataValue] = {"dagster/row_count": sum(counts.values())}
    if column is not None:
        metadata |= {f"{column}/{group or 'none'}": n for group, n in sorted(counts.items())}
    return dg.AssetObservation(asset_key=key, metadata=metadata)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=ui_description(__doc__),
)
def governance_tables_sensor(
    context: dg.SensorEvaluationContext, governance_db: GovernanceDB
) -> dg.SensorResult | dg.SkipReason:
    counts = table_counts(governance_db.engine)
    before = json.loads(context.cursor) if context.cursor else {}
    changed = [key for key, value in counts.items() if before.get(key) != value]
    if not changed:
        totals = ", ".join(f"{k} {sum(v.values())}" for k, v in counts.items())
        return dg.SkipReason(f"row counts unchanged since the last observation: {totals}")
    return dg.SensorResult(
        asset_events=[observation(key, counts[key]) for key in changed],
        cursor=json.dumps(counts, sort_keys=True),
    )

"""The governance database's tables that the pipeline reads, as external assets.

Nothing in this code location materialises them: tasks are created by people and other systems,
artifacts and metric points are written as tasks run. Declaring them puts the queue at the head
of the lineage graph: `governance_tasks` → `task_runs` → `task_artifacts` →
`task_completion_audit`, and `experiment_metric_points` → `experiment_metrics`.
"""

from __future__ import annotations

import dagster as dg

from juggernaut_assets.db.models import ExperimentMetricPoint, GovernanceTask, TaskArtifact

OWNERS = ["team:juggernaut"]
"""Who answers for every asset of this code location (shown on each asset's page)."""

DB_KINDS = {"postgres"}


def _table(name: str, description: str, deps: list[dg.AssetKey] | None = None) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=name,
        deps=deps or [],
        group_name="governance_db",
        kinds=DB_KINDS,
        owners=OWNERS,
        description=description,
        metadata={"dagster/table_name": name},
    )


governance_tasks = _table(
    GovernanceTask.__tablename__,
    "The task queue: one row per task with its type, title, payload, priority, `status`, "
    "dependencies (`depends_on`), attempts and last error. Sensors claim pending rows; "
    "`juggernaut tasks list` and `juggernaut tasks show ID` read it.",
)

task_runs_key = dg.AssetKey("task_runs")  # declared in task_runs.py, which depends on this module

task_artifacts = _table(
    TaskArtifact.__tablename__,
    "What each task attempt produced (query results, pull requests and merges, asset "
    "materialisations, registrations, messages), with how it was verified. Written in the "
    "same transaction as the outcome that `task_runs` reports.",
    deps=[task_runs_key],
)

experiment_metric_points = _table(
    ExperimentMetricPoint.__tablename__,
    "Raw experiment observations: one value per unit, variant and metric.",
)

EXTERNAL_TABLES = [governance_tasks, task_artifacts, experiment_metric_points]

"""A small demo data set for the embedded quick start: one task for each path a task can take.

Every task has a `demo:` dedupe key, so seeding twice adds nothing. With the sensors running,
the scan tasks materialise every asset within minutes: `market_trends` (then `trend_scores` and
`expired_domains` by `trend_followers_sensor`), `task_completion_audit`, and
`experiment_metrics` (then `experiment_decisions` by `experiment_decisions_sensor`) without
waiting for their hourly schedule.
"""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from juggernaut_assets.db.models import Experiment, ExperimentMetricPoint, ExperimentVariant
from juggernaut_assets.tasks.create import add_task

DEMO_TASKS: list[dict[str, Any]] = [
    {
        "key": "tasks-by-status",
        "task_type": "analysis",
        "title": "Tasks by status",
        "priority": "high",
        "payload": {"sql": "SELECT status, COUNT(*) AS n FROM governance_tasks GROUP BY status"},
    },
    {
        "key": "artifacts-by-kind",
        "task_type": "reporting",
        "title": "Verified artifacts by kind (alias of analysis)",
        "payload": {
            "sql": "SELECT kind, COUNT(*) AS n FROM task_artifacts WHERE verified GROUP BY kind"
        },
        "depends_on": ["tasks-by-status"],
    },
    {
        "key": "bad-sql",
        "task_type": "database",
        "title": "SQL that does not parse (fails with the parser's message)",
        "payload": {"sql": "SELEC * FROM governance_tasks"},
    },
    {
        "key": "write-in-read-only",
        "task_type": "analysis",
        "title": "A write in a read-only task (rejected, no row changes)",
        "payload": {"sql": "DELETE FROM governance_tasks"},
    },
    {
        "key": "after-bad-sql",
        "task_type": "analysis",
        "title": "Depends on a failing task (becomes blocked)",
        "payload": {"sql": "SELECT 1"},
        "depends_on": ["bad-sql"],
    },
    {
        "key": "workflow-query",
        "task_type": "workflow",
        "title": "Workflow with one database step",
        "payload": {
            "steps": [
                {"tool": "database", "args": {"sql": "SELECT COUNT(*) AS calls FROM tool_calls"}}
            ]
        },
    },
    {
        "key": "workflow-slack",
        "task_type": "workflow",
        "title": "Workflow posting to Slack (blocked until SLACK_WEBHOOK_URL is set)",
        "payload": {"steps": [{"tool": "slack", "args": {"text": "Juggernaut demo says hi"}}]},
    },
    {
        "key": "workflow-empty",
        "task_type": "workflow",
        "title": "Workflow without steps (fails: nothing to do)",
        "payload": {"steps": []},
    },
    {
        "key": "code-fix",
        "task_type": "code_fix",
        "title": "Code change (blocked until GITHUB_TOKEN is set)",
        "payload": {
            "repo": "example-org/example-repo",
            "title": "Fix typo",
            "changes": [{"path": "README.md", "content": "# Example\n"}],
        },
    },
    {
        "key": "no-handler",
        "task_type": "content_creation",
        "title": "A task type with no handler (waits for a person)",
        "payload": {"brief": "write a blog post"},
    },
    {
        "key": "needs-approval",
        "task_type": "analysis",
        "title": "Needs approval first",
        "payload": {"sql": "SELECT COUNT(*) FROM experiments"},
        "requires_approval": True,
        "approval_reason": "demo: approve with `juggernaut tasks approve ID`",
    },
    {
        "key": "scan-market-trends",
        "task_type": "scan",
        "title": "Scan the trend sources for the latest day (then scores and domains follow)",
        "priority": "low",
        "payload": {"asset": "market_trends"},
    },
    {
        "key": "scan-audit",
        "task_type": "scan",
        "title": "Materialise the task-completion audit",
        "priority": "low",
        "payload": {"asset": "task_completion_audit"},
        "depends_on": ["tasks-by-status", "workflow-query"],
    },
    {
        "key": "scan-experiment-metrics",
        "task_type": "scan",
        "title": "Compute the experiment metrics now (then the experiments are decided)",
        "priority": "low",
        "payload": {"asset": "experiment_metrics"},
    },
]


DEMO_EXPERIMENT = "demo: checkout button colour"
DEMO_UNITS = 600


def seed_experiment(session: Session) -> int:
    """A running A/B experiment with unit-level points (treatment converts better), once."""
    if session.scalar(sa.select(Experiment.id).where(Experiment.name == DEMO_EXPERIMENT)):
        return 0
    experiment = Experiment(
        name=DEMO_EXPERIMENT,
        experiment_type="revenue",
        hypothesis="A green checkout button converts better than the grey one",
        status="running",
        config={
            "primary_metric": "conversion",
            "metric_type": "binomial",
            "min_sample_size": 200,
            "iteration_template": {
                "task_type": "analysis",
                "payload": {"sql": "SELECT COUNT(*) AS points FROM experiment_metric_points"},
            },
        },
        current_iteration=0,
        max_iterations=10,
    )
    session.add(experiment)
    session.flush()
    rng = random.Random(2026)
    for name, is_control, rate in (("grey", True, 0.10), ("green", False, 0.16)):
        session.add(
            ExperimentVariant(
                experiment_id=experiment.id, name=name, is_control=is_control, traffic_percentage=50
            )
        )
        session.add_all(
            ExperimentMetricPoint(
                experiment_id=experiment.id,
                metric_name="conversion",
                metric_type="binomial",
                metric_value=float(rng.random() < rate),
                variant=name,
                unit_id=f"{name}-{unit}",
            )
            for unit in range(DEMO_UNITS)
        )
    return 1


def seed(engine: Engine) -> int:
    """Insert the demo tasks (and experiment) not there yet; returns how many were added."""
    created = 0
    ids: dict[str, str] = {}
    with Session(engine) as session, session.begin():
        for spec in DEMO_TASKS:
            task, new = add_task(
                session,
                spec["task_type"],
                spec["payload"],
                title=spec["title"],
                priority=spec.get("priority", "medium"),
                depends_on=[ids[k] for k in spec.get("depends_on", [])],
                requires_approval=spec.get("requires_approval", False),
                approval_reason=spec.get("approval_reason"),
                dedupe_key=f"demo:{spec['key']}",
            )
            ids[spec["key"]] = task.id
            created += new
        created += seed_experiment(session)
    return created

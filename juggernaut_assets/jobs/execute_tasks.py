"""`execute_tasks`: the executor job. One run carries one batch of claimed tasks.

It runs in-process (no subprocess per step): a batch is one op that handles each task in turn
and reports each task's outcome as its own event on `task_runs`.
"""

from collections import Counter

import dagster as dg
import httpx

from juggernaut_assets import settings
from juggernaut_assets.assets.task_runs import task_event
from juggernaut_assets.execution.executor import ExecutionEnv, run_batch
from juggernaut_assets.execution.record import mark_events_reported
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.llm import LlmResource
from juggernaut_assets.resources.registrar import NameComRegistrar
from juggernaut_assets.resources.task_tools import TaskToolsResource

BATCH_TAG = "juggernaut/batch"
REPORT_EVERY = 50
"""Outcomes whose events are written are marked reported in groups of this many."""
USER_AGENT = "juggernaut-assets (task executor)"


class BatchConfig(dg.Config):
    batch_key: str


@dg.op(description="Carry out the claimed tasks of one batch and report each outcome.")
def execute_task_batch(
    context: dg.OpExecutionContext,
    config: BatchConfig,
    governance_db: GovernanceDB,
    task_tools: TaskToolsResource,
    github: GitHubResource,
    llm: LlmResource,
    registrar: NameComRegistrar,
) -> None:
    counts: Counter[str] = Counter()
    with httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False) as http:
        env = ExecutionEnv(
            engine=governance_db.engine,
            tools=task_tools,
            github=github,
            artifacts_root=settings.artifacts_path(),
            http=http,
            instance=context.instance,
            log=context.log,
            llm=llm,
            registrar=registrar,
        )
        reported: list[str] = []
        try:
            for outcome in run_batch(env, config.batch_key, context.run_id):
                counts[str(outcome.next_status or outcome.ending)] += 1
                if outcome.recorded:
                    context.log_event(task_event(outcome))
                    reported.append(outcome.task_id)
                if len(reported) >= REPORT_EVERY:
                    mark_events_reported(governance_db.engine, reported)
                    reported.clear()
        finally:
            mark_events_reported(governance_db.engine, reported)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no tasks"
    context.log.info(f"batch {config.batch_key}: {summary}")


@dg.job(
    executor_def=dg.in_process_executor,
    description="Runs a batch of tasks claimed by new_tasks_sensor through the handler registry.",
)
def execute_tasks() -> None:
    execute_task_batch()

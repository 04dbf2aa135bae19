"""`execute_tasks`: the executor job. A run carries the batch the sensor claimed for it, then
the batches it claims itself while there is work (`task_feed.py`).

It runs in-process (no subprocess per step): one op handles each task in turn and reports each
task's outcome as its own event on `task_runs`, written a chunk at a time (`event_batch.py`).
"""

from collections import Counter
from collections.abc import Mapping

import dagster as dg
import httpx
from sqlalchemy.engine import Engine

from juggernaut_assets import settings
from juggernaut_assets.assets.task_runs import task_details, task_event
from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.execution.executor import ExecutionEnv, run_batches
from juggernaut_assets.execution.outcome import TaskOutcome
from juggernaut_assets.execution.phases import PhaseClock
from juggernaut_assets.execution.record import mark_events_reported
from juggernaut_assets.jobs.event_batch import enable_event_batches, log_events
from juggernaut_assets.jobs.executors import batch_executor
from juggernaut_assets.jobs.task_feed import TaskFeed
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.llm import LlmResource
from juggernaut_assets.resources.registrar import NameComRegistrar
from juggernaut_assets.resources.task_queue import TaskQueueResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.claim import run_worker

BATCH_TAG = "juggernaut/batch"
USER_AGENT = "juggernaut-assets (task executor)"
SUMMARY_TAG_PREFIX = "juggernaut/"
SUMMARY_STATES = ("completed", "failed", "blocked", "waiting", "retrying", "not_recorded")
"""How a batch's tasks ended, as run tags (`juggernaut/failed=3`) and output metadata."""
_STATE_OF = {
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "failed",
    TaskStatus.BLOCKED: "blocked",
    TaskStatus.WAITING_APPROVAL: "waiting",
    TaskStatus.AWAITING_PR_MERGE: "waiting",
    TaskStatus.PENDING: "retrying",
}
UNFINISHED_SHOWN = 20


def summary_state(outcome: TaskOutcome) -> str:
    """Where the task stands after its outcome was recorded: one of `SUMMARY_STATES`
    (`retrying`: back in the queue for another attempt; `not_recorded`: another worker had
    taken the task, nothing was written)."""
    if not outcome.recorded or outcome.next_status is None:
        return "not_recorded"
    return _STATE_OF.get(outcome.next_status, "retrying")


def summary_tags(counts: Mapping[str, int]) -> dict[str, str]:
    """Run tags: every state with its count (zeros too, so `juggernaut/failed=0` filters)."""
    return {f"{SUMMARY_TAG_PREFIX}{state}": str(counts.get(state, 0)) for state in SUMMARY_STATES}


def _unfinished_table(rows: list[TaskOutcome], counts: Mapping[str, int]) -> str:
    """The first tasks that did not complete: which, what kind, where they stand, why."""
    total = sum(counts.values()) - counts.get("completed", 0)
    if not rows:
        return "Every task of the batch completed." if counts else "The batch had no task."
    lines = ["| task | type | state | reason |", "| --- | --- | --- | --- |"]
    for o in rows:
        reason = o.message.replace("|", "\\|").replace("\n", " ")[:80]
        lines.append(f"| {o.task_id[:8]} | {o.task_type} | {summary_state(o)} | {reason} |")
    more = f"\n\n… and {total - len(rows)} more." if total > len(rows) else ""
    return "\n".join(lines) + more


class BatchConfig(dg.Config):
    batch_key: str


@dg.op(
    description=(
        "Carry out the claimed tasks of one batch, then of the next batches it claims while "
        "there is work, and report each outcome. Its output's metadata and the run's tags "
        "(juggernaut/completed, juggernaut/failed, …) count how the tasks ended; the phases "
        "metadata says where the run's time went."
    ),
    out=dg.Out(dg.Nothing),
)
def execute_task_batch(
    context: dg.OpExecutionContext,
    config: BatchConfig,
    governance_db: GovernanceDB,
    task_queue: TaskQueueResource,
    task_tools: TaskToolsResource,
    github: GitHubResource,
    llm: LlmResource,
    registrar: NameComRegistrar,
) -> dg.Output[None]:
    enable_event_batches()
    engine = governance_db.engine
    counts: Counter[str] = Counter()
    unfinished: list[TaskOutcome] = []
    clock = PhaseClock()
    feed = TaskFeed(engine, context.instance, task_queue, clock, run_worker(context.run_id))
    with httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False) as http:
        env = ExecutionEnv(
            engine=engine,
            tools=task_tools,
            github=github,
            artifacts_root=settings.artifacts_path(),
            http=http,
            instance=context.instance,
            log=context.log,
            llm=llm,
            registrar=registrar,
        )
        try:
            for chunk in run_batches(env, config.batch_key, context.run_id, feed, clock):
                # Tasks the run's own claims settled (blocked, waiting) are reported with it.
                outcomes, feed.settled = chunk + feed.settled, []
                _count(outcomes, counts, unfinished)
                with clock.phase("events"):
                    _report(context, engine, [o for o in outcomes if o.recorded])
            _count(feed.settled, counts, unfinished)
            _report(context, engine, feed.settled)
        finally:
            context.instance.add_run_tags(context.run_id, summary_tags(counts))
    summary = ", ".join(f"{counts[s]} {s}" for s in SUMMARY_STATES if counts[s]) or "no tasks"
    context.log.info(f"batch {config.batch_key} and {feed.batches} more: {summary}")
    return dg.Output(
        None,
        metadata={
            "summary": summary,
            "tasks": sum(counts.values()),
            **{state: counts[state] for state in SUMMARY_STATES},
            "batches": 1 + feed.batches,
            "not_completed": dg.MetadataValue.md(_unfinished_table(unfinished, counts)),
            "phases_s": dg.MetadataValue.json(clock.totals()),
        },
    )


def _count(
    outcomes: list[TaskOutcome], counts: Counter[str], unfinished: list[TaskOutcome]
) -> None:
    """Add the outcomes to the batch's counts; keep the first unfinished ones for its table."""
    for outcome in outcomes:
        state = summary_state(outcome)
        counts[state] += 1
        if state != "completed" and len(unfinished) < UNFINISHED_SHOWN:
            unfinished.append(outcome)


def _report(context: dg.OpExecutionContext, engine: Engine, outcomes: list[TaskOutcome]) -> None:
    """Write the chunk's `task_runs` events in one storage write, then clear their
    `event_pending` (a crash in between leaves them to the sensor, see `record.py`)."""
    if not outcomes:
        return
    details = task_details(engine, [o.task_id for o in outcomes])
    log_events(context, [task_event(o, details.get(o.task_id)) for o in outcomes])
    mark_events_reported(engine, [o.task_id for o in outcomes])


@dg.job(
    executor_def=batch_executor(),
    description="Runs a batch of tasks claimed by new_tasks_sensor through the handler registry.",
)
def execute_tasks() -> None:
    execute_task_batch()

"""`settle_pull_requests`: the run `pr_state_sensor` launches to act on pull requests.

One run carries the actions of one tick (update a branch, merge, settle a task), each on the
state the sensor saw. Its tags name the pull requests and tasks it acts on; each task whose
state moves gets its `task_runs` event, as in an executor run.
"""

import dagster as dg

from juggernaut_assets.assets.task_runs import task_details, task_event
from juggernaut_assets.execution.pr_actions import PrAction, PrEnv, carry_out
from juggernaut_assets.execution.record import mark_events_reported
from juggernaut_assets.lib.merge_policy import Action
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.tasks.claim import run_worker

PULL_REQUESTS_TAG = "juggernaut/pull_requests"
TASKS_TAG = "juggernaut/task_ids"
ACTIONS_TAG = "juggernaut/pr_actions"


class PrActionConfig(dg.Config):
    tracking_id: str
    action: str
    head_sha: str
    reason: str
    version: int


class PrActionsConfig(dg.Config):
    actions: list[PrActionConfig]


@dg.op(description="Update, merge and settle the pull requests pr_state_sensor asked for.")
def act_on_pull_requests(
    context: dg.OpExecutionContext,
    config: PrActionsConfig,
    governance_db: GovernanceDB,
    github: GitHubResource,
) -> None:
    engine = governance_db.engine
    env = PrEnv(engine, github, run_worker(context.run_id), context.log)
    reported: list[str] = []
    failures: list[str] = []
    try:
        for item in config.actions:
            action = PrAction(
                item.tracking_id, Action(item.action), item.head_sha, item.reason, item.version
            )
            try:
                result = carry_out(env, action)
            except Exception as exc:  # one pull request's trouble never stops the others
                context.log.exception(f"{item.action} on {item.tracking_id} raised")
                failures.append(f"{item.action} on {item.tracking_id}: {type(exc).__name__}")
                continue
            context.log.info(f"{result.name} {result.action}: {result.summary}")
            if result.outcome is not None:
                task = task_details(engine, [result.outcome.task_id]).get(result.outcome.task_id)
                context.log_event(task_event(result.outcome, task))
                reported.append(result.outcome.task_id)
    finally:
        mark_events_reported(engine, reported)
    if failures:
        raise dg.Failure(description="; ".join(failures))


@dg.job(
    executor_def=dg.in_process_executor,
    description="Acts on tracked pull requests for pr_state_sensor: update, merge, settle.",
)
def settle_pull_requests() -> None:
    act_on_pull_requests()

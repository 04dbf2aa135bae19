"""`pr_state_sensor`: follows every tracked open pull request on GitHub and asks for the runs
that update, merge and settle them.

Each tick reads all open pull requests in GraphQL requests of 100 (never one REST call per
pull request), stores what it saw in `pr_tracking`, decides each pull request's next step
(`lib/merge_policy.py`) and launches one `settle_pull_requests` run for the actions. It also
re-requests the settling of pull requests seen merged or closed whose task has not moved (a
settle run that failed). Run keys carry each row's action version, so a tick evaluated twice
launches nothing twice; a pull request with an action run still in flight is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import dagster as dg
import httpx

from juggernaut_assets.db.models import utcnow
from juggernaut_assets.execution import pr_store
from juggernaut_assets.execution.pr_refresh import Budget, refresh
from juggernaut_assets.execution.pr_store import FollowedPr
from juggernaut_assets.jobs.pull_requests import (
    ACTIONS_TAG,
    PULL_REQUESTS_TAG,
    TASKS_TAG,
    settle_pull_requests,
)
from juggernaut_assets.lib.merge_policy import (
    ACTIONS_IN_RUNS,
    Action,
    Decision,
    MergePolicy,
    decide,
    progress_signature,
)
from juggernaut_assets.lib.pr_query import ObservedPr
from juggernaut_assets.lib.ui_text import ui_description
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB

PR_SENSOR_INTERVAL_SECONDS = int(os.environ.get("JUGGERNAUT_PR_SENSOR_INTERVAL_SECONDS", "30"))
MAX_FOLLOWED_PER_TICK = 2_000
ACTIONS_PER_RUN = 50
SETTLE_RETRY_AFTER = timedelta(minutes=5)
USER_AGENT = "juggernaut-assets (pr_state_sensor)"
_UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

Seen = tuple[FollowedPr, ObservedPr, Decision]


def _in_flight(instance: dg.DagsterInstance) -> set[str]:
    """`pr_tracking` ids that an unfinished `settle_pull_requests` run acts on."""
    busy: set[str] = set()
    records = instance.get_run_records(
        dg.RunsFilter(job_name=settle_pull_requests.name, statuses=_UNFINISHED)
    )
    for record in records:
        config = record.dagster_run.run_config or {}
        op = (config.get("ops") or {}).get("act_on_pull_requests") or {}
        for action in (op.get("config") or {}).get("actions") or []:
            busy.add(str(action.get("tracking_id")))
    return busy


def _unsettled(engine: Any, skip: set[str], now: Any) -> list[Seen]:
    """Merged or closed pull requests whose task still waits: settle them (again)."""
    seen: list[Seen] = []
    for pr in pr_store.unsettled_pull_requests(engine):
        tried = pr_store.parse_time(pr.ours.get("settle_tried_at"))
        if pr.id in skip or (tried and now - tried < SETTLE_RETRY_AFTER):
            continue
        obs = pr_store.observed_from_row(pr)
        policy = MergePolicy(may_merge=False, max_age=timedelta.max)
        seen.append((pr, obs, decide(pr.tracked(now), obs, policy, now)))
    return seen


def _run_request(batch: Sequence[Seen]) -> dg.RunRequest:
    actions = [
        {
            "tracking_id": pr.id,
            "action": decision.action.value,
            "head_sha": obs.head_sha or pr.head_sha or "",
            "reason": decision.reason,
            "version": pr.version,
        }
        for pr, obs, decision in batch
    ]
    key_parts = sorted(
        f"{a['tracking_id']}:{a['action']}:{a['head_sha']}:{a['version']}" for a in actions
    )
    run_key = "pr-" + hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:32]
    names = " ".join(pr.name for pr, _, _ in batch)
    tasks = " ".join(pr.task_id or "-" for pr, _, _ in batch)
    kinds = Counter(d.action.value for _, _, d in batch)
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"act_on_pull_requests": {"config": {"actions": actions}}}},
        tags={
            PULL_REQUESTS_TAG: names[:1000],
            TASKS_TAG: tasks[:1000],
            ACTIONS_TAG: ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
        },
    )


def summarize(followed: int, seen: Sequence[Seen], unchanged: set[str], extra: list[str]) -> str:
    """'12 open PRs in 3 repos: 10 unchanged, 1 checks pending, 1 behind'."""
    repos = {pr.repo.lower() for pr, _, _ in seen}
    counts: Counter[str] = Counter()
    for pr, _, decision in seen:
        waiting = decision.action is Action.WAIT
        counts["unchanged" if waiting and pr.id in unchanged else decision.category] += 1
    parts = [f"{n} {what}" for what, n in counts.most_common()]
    head = f"{followed} open PR(s) in {len(repos)} repo(s)"
    return "; ".join([head + (": " + ", ".join(parts) if parts else ""), *extra])


@dg.sensor(
    job=settle_pull_requests,
    minimum_interval_seconds=PR_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=ui_description(__doc__),
)
def pr_state_sensor(
    context: dg.SensorEvaluationContext,
    governance_db: GovernanceDB,
    github: GitHubResource,
) -> dg.SensorResult | dg.SkipReason:
    engine = governance_db.engine
    followed = pr_store.open_pull_requests(engine, MAX_FOLLOWED_PER_TICK)
    if not github.configured:
        return dg.SkipReason(
            f"GITHUB_TOKEN is not configured: {len(followed)} open pull request(s) not followed"
        )
    cursor = json.loads(context.cursor) if context.cursor else {}
    budget = Budget.from_cursor(cursor.get("budget"))
    now = utcnow()
    busy = _in_flight(context.instance)
    with httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False) as http:
        fresh = refresh(github, http, followed, budget, now)
    max_age = timedelta(hours=github.pr_max_age_hours)
    seen: list[Seen] = []
    unchanged: set[str] = set()
    for pr, obs in fresh.observed:
        policy = MergePolicy(github.may_merge(pr.repo), max_age, github.merge_method)
        decision = decide(pr.tracked(now), obs, policy, now)
        if pr.ours.get("signature") == progress_signature(obs):
            unchanged.add(pr.id)
        seen.append((pr, obs, decision))
    pr_store.write_observations(engine, seen, now)
    pr_store.mark_missing(engine, fresh.missing)
    seen_ids = {pr.id for pr, _, _ in seen}
    settling = _unsettled(engine, busy | seen_ids, now)
    to_act = [
        item
        for item in [*seen, *settling]
        if item[2].action in ACTIONS_IN_RUNS and item[0].id not in busy
    ]
    extra = []
    if fresh.missing:
        extra.append(f"{len(fresh.missing)} not answered by GitHub")
    if fresh.stopped:
        extra.append(f"{fresh.unread} not read: {fresh.stopped}")
    if busy:
        extra.append(f"{len(busy)} with an action run in flight")
    if settling:
        extra.append(f"{len(settling)} merged/closed to settle")
    extra.append(f"{fresh.requests} GraphQL request(s), {fresh.points} point(s)")
    if budget.remaining is not None:
        extra.append(f"{budget.remaining} point(s) left")
    summary = summarize(len(followed), seen, unchanged, extra)
    requests = [
        _run_request(to_act[i : i + ACTIONS_PER_RUN])
        for i in range(0, len(to_act), ACTIONS_PER_RUN)
    ]
    context.log.info(summary)
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"budget": budget.as_cursor(), "summary": summary}),
        skip_reason=None if requests else summary,
    )

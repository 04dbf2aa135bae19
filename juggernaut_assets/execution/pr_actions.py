"""What a pull-request run does: update a branch, merge, and settle the task of a pull request.

Each action first re-reads the `pr_tracking` row: if its version moved since the sensor's tick
(another action ran), the action is skipped and the next tick decides again. Every GitHub
request is a `tool_calls` row. A merge is made with `sha = head_sha`, so GitHub refuses it if
anything was pushed after the checks were read; a merge whose answer is lost (5xx, timeout) is
never repeated here: the next tick reads the pull request's state first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from github import GithubException
from sqlalchemy.engine import Engine

from juggernaut_assets.db.enums import ArtifactKind, PrState, TaskStatus
from juggernaut_assets.db.models import GovernanceTask, PrTracking, utcnow
from juggernaut_assets.execution import pr_store
from juggernaut_assets.execution.call_log import recorded_call
from juggernaut_assets.execution.github_merge import commit_url
from juggernaut_assets.execution.github_pr import pull_request_artifact, repository
from juggernaut_assets.execution.outcome import Artifact, Ending, TaskOutcome
from juggernaut_assets.execution.pr_store import SETTLING_STATUSES, FollowedPr
from juggernaut_assets.execution.record import settle_waiting_task
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.lib.merge_policy import Action
from juggernaut_assets.resources.github import GitHubResource

P = PrTracking.__table__
BASE_MODIFIED_RETRIES = 3
AWAITING = (TaskStatus.AWAITING_PR_MERGE.value,)
BLOCKED = (TaskStatus.BLOCKED.value,)


@dataclass(frozen=True)
class PrAction:
    """One action the sensor asked for, on the state it saw (`head_sha`, `version`)."""

    tracking_id: str
    action: Action
    head_sha: str
    reason: str
    version: int


@dataclass
class PrEnv:
    engine: Engine
    github: GitHubResource
    worker: str
    log: Any
    pause_s: float = 1.0
    """Wait before re-trying a merge GitHub refused with "Base branch was modified"."""


@dataclass
class ActionResult:
    name: str
    action: Action
    summary: str
    outcome: TaskOutcome | None = None


def carry_out(env: PrEnv, action: PrAction) -> ActionResult:
    """Run one action; returns what happened (and the task's outcome when it moved)."""
    with env.engine.connect() as conn:
        pr = pr_store.load(conn, action.tracking_id)
    if pr is None:
        return ActionResult(action.tracking_id, action.action, "skipped: no longer tracked")
    if pr.version != action.version:
        return ActionResult(
            pr.name, action.action, "skipped: its state changed since the sensor's tick"
        )
    return _HANDLERS[action.action](env, pr, action)


def _skip(pr: FollowedPr, action: PrAction, why: str) -> ActionResult:
    return ActionResult(pr.name, action.action, f"skipped: {why}")


def _call_args(pr: FollowedPr, **extra: Any) -> dict[str, Any]:
    return {"repo": pr.repo, "number": pr.number, **extra}


def _bump(env: PrEnv, pr: FollowedPr, **changes: Any) -> None:
    with env.engine.begin() as conn:
        pr_store.record_action(conn, pr, **changes)


def _merge(env: PrEnv, pr: FollowedPr, action: PrAction) -> ActionResult:
    if not env.github.may_merge(pr.repo):
        return _skip(pr, action, f"{pr.repo} is not in JUGGERNAUT_AUTOMERGE_REPOS")
    if pr.task_status != TaskStatus.AWAITING_PR_MERGE.value:
        return _skip(pr, action, f"its task is {pr.task_status}")
    if pr.head_sha != action.head_sha:
        return _skip(pr, action, "a new head was pushed since the checks were read")
    attempts = pr.tracked(utcnow()).merge_attempts + 1
    method = env.github.merge_method
    pull = repository(env.github.client(), pr.repo).get_pull(pr.number)
    for retry in range(BASE_MODIFIED_RETRIES):
        args = _call_args(pr, sha=action.head_sha, merge_method=method, try_number=retry + 1)
        with recorded_call(
            env.engine, pr.task_id, "github_merge", args, [env.github.token or ""]
        ) as call:
            try:
                status = pull.merge(merge_method=method, sha=action.head_sha)
            except GithubException as exc:
                call.success = False
                call.error = f"GitHub answered {exc.status}: {_message(exc)}"
                call.result = {"status_code": exc.status}
                if exc.status == 405 and "base branch was modified" in _message(exc).lower():
                    time.sleep(env.pause_s)
                    continue
                return _merge_refused(env, pr, action, attempts, exc)
            except requests.RequestException as exc:
                call.success = False
                call.error = f"no answer from GitHub: {type(exc).__name__}"
                return _merge_unconfirmed(env, pr, action, attempts, call.error)
            call.result = {"merged": bool(status.merged), "sha": status.sha}
            call.external_id = status.sha
        if not status.merged:
            return _merge_refused(env, pr, action, attempts, None)
        _bump(
            env,
            pr,
            merge_attempts={"head": action.head_sha, "count": attempts},
            merged_by_bot=status.sha,
        )
        pr.merge_commit_sha = status.sha
        pr.current_state = PrState.MERGED.value
        settled = _settle_merged(env, pr, action)
        return ActionResult(
            pr.name,
            action.action,
            f"merged as {status.sha[:12]}; {settled.summary}",
            settled.outcome,
        )
    return _merge_refused(env, pr, action, attempts, None, "the base branch kept moving")


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return str(data.get("message") or exc.message or "no message")


def _merge_refused(
    env: PrEnv,
    pr: FollowedPr,
    action: PrAction,
    attempts: int,
    exc: GithubException | None,
    why: str | None = None,
) -> ActionResult:
    if exc is not None and exc.status >= 500:
        return _merge_unconfirmed(env, pr, action, attempts, f"GitHub answered {exc.status}")
    reason = why or (f"{exc.status} {_message(exc)}" if exc else "GitHub did not merge it")
    note = f"GitHub refused the merge of {pr.name} at {action.head_sha[:12]}: {reason}"
    _bump(env, pr, merge_attempts={"head": action.head_sha, "count": attempts}, merge_error=note)
    _note(env, pr, note)
    return ActionResult(pr.name, action.action, note)


def _merge_unconfirmed(
    env: PrEnv, pr: FollowedPr, action: PrAction, attempts: int, why: str
) -> ActionResult:
    note = (
        f"the merge of {pr.name} at {action.head_sha[:12]} is unconfirmed ({why}); not retried: "
        "the next tick reads the pull request's state first"
    )
    _bump(
        env,
        pr,
        merge_attempts={"head": action.head_sha, "count": attempts},
        merge_unconfirmed=action.head_sha,
    )
    _note(env, pr, note)
    return ActionResult(pr.name, action.action, note)


def _note(env: PrEnv, pr: FollowedPr, note: str) -> None:
    """Say on the waiting task why its pull request is not merged yet."""
    t = GovernanceTask.__table__
    if not pr.task_id:
        return
    with env.engine.begin() as conn:
        conn.execute(
            t.update()
            .where(t.c.id == pr.task_id, t.c.status == TaskStatus.AWAITING_PR_MERGE.value)
            .values(error_message=note, updated_at=utcnow())
        )


def _update_branch(env: PrEnv, pr: FollowedPr, action: PrAction) -> ActionResult:
    if pr.ours.get("branch_updated_for") == action.head_sha:
        return _skip(pr, action, "the branch was already updated for this head")
    pull = repository(env.github.client(), pr.repo).get_pull(pr.number)
    args = _call_args(pr, expected_head_sha=action.head_sha)
    with recorded_call(
        env.engine, pr.task_id, "github_update_branch", args, [env.github.token or ""]
    ) as call:
        try:
            accepted = pull.update_branch(expected_head_sha=action.head_sha)
        finally:
            _bump(env, pr, branch_updated_for=action.head_sha)
        call.success = bool(accepted)
        call.result = {"accepted": bool(accepted)}
        if not accepted:
            call.error = "GitHub did not accept the update (the head moved, or no permission)"
    if accepted:
        return ActionResult(pr.name, action.action, f"asked GitHub to update {pr.name}")
    return ActionResult(pr.name, action.action, f"GitHub refused to update {pr.name}")


def _settle(
    env: PrEnv,
    pr: FollowedPr,
    action: PrAction,
    ending: Ending,
    message: str,
    from_statuses: tuple[str, ...],
    artifacts: list[Artifact] | None = None,
    values: dict[str, Any] | None = None,
) -> ActionResult:
    if not pr.task_id:
        return _skip(pr, action, "no task is linked to it")
    next_status = {
        Ending.COMPLETED: TaskStatus.COMPLETED,
        Ending.FAILED: TaskStatus.FAILED,
        Ending.BLOCKED: TaskStatus.BLOCKED,
        Ending.AWAITING: TaskStatus.AWAITING_PR_MERGE,
    }[ending]
    outcome = TaskOutcome(
        pr.task_id,
        pr.task_type or "code",
        ending,
        message,
        pr.task_attempt,
        artifacts or [],
        next_status=next_status,
    )
    if not settle_waiting_task(env.engine, outcome, env.worker, from_statuses, values):
        return _skip(pr, action, f"its task is no longer {' or '.join(from_statuses)}")
    return ActionResult(pr.name, action.action, f"task {pr.task_id} {next_status}", outcome)


def _settle_merged(env: PrEnv, pr: FollowedPr, action: PrAction) -> ActionResult:
    sha, base = pr.merge_commit_sha, pr.base
    if not sha or not base:
        note = f"{pr.name} is merged; GitHub has not reported its merge commit yet"
        _bump(env, pr, settle_problem=note, settle_tried_at=utcnow().isoformat())
        _note(env, pr, note)
        return _skip(pr, action, "GitHub has not reported its merge commit yet")
    artifacts = [
        Artifact(
            kind=ArtifactKind.MERGE_COMMIT,
            uri=commit_url(pr.url, sha),
            external_id=sha,
            details={"repo": pr.repo, "number": pr.number, "sha": sha, "base": base},
        ),
        pull_request_artifact(
            pr.repo,
            pr.number,
            pr.url,
            pr.head_sha,
            base=base,
            merged_by=pr.ours.get("merged_by"),
        ),
    ]
    args = _call_args(pr, sha=sha, base=base)
    with recorded_call(
        env.engine, pr.task_id, "github_verify_merge", args, [env.github.token or ""]
    ) as call:
        problems = verify_artifacts(artifacts, VerifyEnv(env.engine, None, env.github))
        call.success = not problems
        call.result = {"verified": not problems}
        call.error = "; ".join(problems) or None
        call.external_id = sha
    if problems:
        note = f"{pr.name} is merged, but its merge did not verify: {'; '.join(problems)}"
        _bump(env, pr, settle_problem=note, settle_tried_at=utcnow().isoformat())
        _note(env, pr, note)
        return ActionResult(pr.name, action.action, note)
    by = pr.ours.get("merged_by")
    message = f"pull request {pr.name} merged into {base} as {sha[:12]}" + (
        f" by @{by}" if by else ""
    )
    result = _settle(env, pr, action, Ending.COMPLETED, message, SETTLING_STATUSES, artifacts)
    with env.engine.begin() as conn:
        conn.execute(
            P.update()
            .where(P.c.id == pr.id)
            .values(current_state=PrState.MERGED.value, merge_commit_sha=sha, updated_at=utcnow())
        )
        pr_store.record_action(conn, pr, settled="merged")
    return result


def _settle_closed(env: PrEnv, pr: FollowedPr, action: PrAction) -> ActionResult:
    result = _settle(env, pr, action, Ending.FAILED, action.reason, SETTLING_STATUSES)
    _bump(env, pr, settled="closed")
    return result


def _block_conflict(env: PrEnv, pr: FollowedPr, action: PrAction) -> ActionResult:
    result = _settle(env, pr, action, Ending.BLOCKED, action.reason, AWAITING)
    _bump(env, pr)
    return result


def _unblock(env: PrEnv, pr: FollowedPr, action: PrAction) -> ActionResult:
    values = {"status": TaskStatus.AWAITING_PR_MERGE.value, "error_message": action.reason}
    result = _settle(env, pr, action, Ending.AWAITING, action.reason, BLOCKED, values=values)
    _bump(env, pr)
    return result


def _expire(env: PrEnv, pr: FollowedPr, action: PrAction) -> ActionResult:
    result = _settle(env, pr, action, Ending.FAILED, action.reason, SETTLING_STATUSES)
    _bump(env, pr, settled="expired")
    return result


_HANDLERS: dict[Action, Callable[[PrEnv, FollowedPr, PrAction], ActionResult]] = {
    Action.MERGE: _merge,
    Action.UPDATE_BRANCH: _update_branch,
    Action.SETTLE_MERGED: _settle_merged,
    Action.SETTLE_CLOSED: _settle_closed,
    Action.BLOCK_CONFLICT: _block_conflict,
    Action.UNBLOCK: _unblock,
    Action.EXPIRE: _expire,
}

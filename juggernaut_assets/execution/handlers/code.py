"""`code` (and `code_fix`, `code_change`, `code_implementation`): changes as pull requests.

The handler opens a pull request and leaves the task `awaiting_pr_merge`; nothing is merged
here. It runs only with a GitHub token, for a repository in `JUGGERNAUT_GITHUB_REPOS` (or one
an operator approved for this task). The files come from the payload's `changes`, or, for an
`instruction` without them, from a model (`execution/codegen.py`; blocked when no model is
configured). Either way the change is only proposed: the task is done when its PR is merged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.db.models import GovernanceTask, PrTracking, ToolCall, new_id, utcnow
from juggernaut_assets.execution.codegen import (
    GeneratedChange,
    generate_change,
    has_open_pull_request,
    pr_body,
    pr_title,
    require_llm,
)
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.github_pr import (
    FileWrite,
    OpenedPullRequest,
    branch_for_task,
    open_pull_request,
    pull_request_artifact,
)
from juggernaut_assets.execution.outcome import (
    HandlerResult,
    NeedsApproval,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.tasks.payloads import CodePayload, validate_payload

GITHUB_NOT_CONFIGURED = "GITHUB_TOKEN is not configured"
TOOL_NAME = "github_pull_request"
PR_OPEN = "open"


def _approved(ctx: TaskContext) -> bool:
    """True when an operator approved this task (which lets it use a repo outside the list)."""
    with ctx.engine.connect() as conn:
        who = conn.execute(
            sa.select(GovernanceTask.approved_by).where(GovernanceTask.id == ctx.task_id)
        ).scalar_one_or_none()
    return bool(who)


def _check_policy(ctx: TaskContext, payload: CodePayload) -> list[FileWrite] | None:
    """The payload's explicit writes, or None for a generated change (a model is configured)."""
    if not ctx.github.configured:
        raise TaskBlocked(GITHUB_NOT_CONFIGURED)
    if not ctx.github.allows(payload.repo) and not _approved(ctx):
        raise NeedsApproval(
            f"repository {payload.repo} is not in JUGGERNAUT_GITHUB_REPOS: approve this task "
            "to let it open a pull request there, or add the repository to the list"
        )
    if payload.changes:
        return [FileWrite(c.path, c.content) for c in payload.changes]
    require_llm(ctx)
    return None


def upsert_pr_tracking(ctx: TaskContext, pr: OpenedPullRequest) -> None:
    """One `pr_tracking` row per (repo, pr_number), pointing at this task and its head."""
    table = PrTracking.__table__
    now = utcnow()
    values = {
        "task_id": ctx.task_id,
        "pr_url": pr.url,
        "current_state": PR_OPEN,
        "branch": pr.branch,
        "head_sha": pr.head_sha,
        "node_id": pr.node_id,
        "updated_at": now,
    }
    key = (table.c.repo == pr.repo, table.c.pr_number == pr.number)
    with ctx.engine.begin() as conn:
        owner = conn.execute(sa.select(table.c.task_id).where(*key).with_for_update()).first()
        if owner is None:
            conn.execute(
                table.insert().values(
                    id=new_id(),
                    repo=pr.repo,
                    pr_number=pr.number,
                    metadata={"base": pr.base},
                    created_at=now,
                    **values,
                )
            )
        elif owner.task_id not in (None, ctx.task_id):
            raise TaskRejected(
                f"pull request {pr.repo}#{pr.number} is tracked for task {owner.task_id}"
            )
        else:
            conn.execute(table.update().where(*key).values(**values))


def _record_call(
    ctx: TaskContext,
    args: dict[str, Any],
    started: datetime,
    pr: OpenedPullRequest | None,
    error: str | None,
) -> None:
    """Write the attempt to `tool_calls`: what was asked and what GitHub answered."""
    result = (
        {
            "number": pr.number,
            "url": pr.url,
            "head_sha": pr.head_sha,
            "created": pr.created,
            "files_committed": pr.files_committed,
        }
        if pr
        else {}
    )
    with ctx.engine.begin() as conn:
        conn.execute(
            ToolCall.__table__.insert().values(
                id=new_id(),
                task_id=ctx.task_id,
                tool_name=TOOL_NAME,
                arguments=args,
                success=pr is not None,
                result=result,
                external_id=f"{pr.repo}#{pr.number}" if pr else None,
                error_message=error,
                duration_ms=int((utcnow() - started).total_seconds() * 1000),
                started_at=started,
                completed_at=utcnow(),
            )
        )


def _scrub(message: str, token: str | None) -> str:
    return message.replace(token, "***") if token else message


def run_code_task(ctx: TaskContext) -> HandlerResult:
    """Open (or, on a retry, find) the task's pull request; the task then awaits its merge.

    For an instruction, the model's edits are the changes (a retry whose pull request is open
    re-finds it without asking the model again); the PR body carries the instruction and the
    model, and the result carries the model calls as `llm_exchange` artifacts.
    """
    payload = validate_payload(CodePayload, ctx.payload)
    explicit = _check_policy(ctx, payload)
    generated: GeneratedChange | None = None
    if explicit is not None:
        changes = explicit
        title = payload.title or f"Juggernaut task {ctx.task_id}"
        body = f"Opened by Juggernaut for task `{ctx.task_id}`."
    else:
        if not has_open_pull_request(ctx, payload.repo):
            generated = generate_change(ctx, payload)
        changes = generated.writes if generated else []
        title = pr_title(payload)
        body = pr_body(ctx.task_id, payload.instruction or "", generated)
    branch = branch_for_task(ctx.task_id)
    args = {
        "repo": payload.repo,
        "base": payload.base,
        "branch": branch,
        "paths": [c.path for c in changes],
    }
    ctx.tools.fence()
    started = utcnow()
    try:
        pr = open_pull_request(
            ctx.github.client(),
            repo_name=payload.repo,
            base=payload.base,
            branch=branch,
            title=title,
            body=body,
            changes=changes,
        )
    except (TaskBlocked, TaskRejected, RetriableError) as exc:
        error = _scrub(str(exc), ctx.github.token)
        _record_call(ctx, args, started, None, error)
        raise type(exc)(error) from None
    _record_call(ctx, args, started, pr, None)
    upsert_pr_tracking(ctx, pr)
    opened = "opened" if pr.created else "found the open"
    by_model = (
        f"; {len(changes)} file(s) written by {generated.model} in {generated.rounds} round(s)"
        if generated
        else ""
    )
    return HandlerResult(
        artifacts=[
            pull_request_artifact(
                pr.repo, pr.number, pr.url, pr.head_sha, branch=pr.branch, base=pr.base
            ),
            *(generated.artifacts if generated else []),
        ],
        summary=(
            f"{opened} pull request {pr.repo}#{pr.number} from {pr.branch} into {pr.base} "
            f"({len(pr.files_committed)} of {len(changes)} file(s) committed in this "
            f"attempt{by_model}); awaiting merge"
        ),
        status=TaskStatus.AWAITING_PR_MERGE,
    )

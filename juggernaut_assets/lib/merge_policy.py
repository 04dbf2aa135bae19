"""What to do with a tracked pull request, given what GitHub says about it (pure).

The rules follow the merge bots teams trust (Kodiak, bulldozer, Mergify): merge only a clean,
approved (where reviews are required), non-draft pull request whose every check on *this*
head passed, with at least one check that ran; update a branch that is behind at most once per
head; never merge a head that was not the one checked; after an uncertain merge, read the state
again before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from juggernaut_assets.lib.pr_query import ObservedPr

MAX_MERGE_ATTEMPTS = 3
"""Merge calls per head before the bot stops trying (a person has to look)."""


class Action(StrEnum):
    WAIT = "wait"
    SETTLE_MERGED = "settle_merged"
    SETTLE_CLOSED = "settle_closed"
    BLOCK_CONFLICT = "block_conflict"
    UNBLOCK = "unblock"
    UPDATE_BRANCH = "update_branch"
    MERGE = "merge"
    EXPIRE = "expire"


ACTIONS_IN_RUNS = frozenset(
    {
        Action.SETTLE_MERGED,
        Action.SETTLE_CLOSED,
        Action.BLOCK_CONFLICT,
        Action.UNBLOCK,
        Action.UPDATE_BRANCH,
        Action.MERGE,
        Action.EXPIRE,
    }
)


@dataclass(frozen=True)
class Tracked:
    """A `pr_tracking` row and the state of its task, as the decision needs them."""

    key: str
    repo: str
    number: int
    task_id: str | None
    task_status: str | None
    base: str | None
    progress_at: datetime
    branch_updated_for: str | None = None
    merge_attempts: int = 0
    """Merge calls already made for the current head."""


@dataclass(frozen=True)
class MergePolicy:
    may_merge: bool
    """The repository is in `JUGGERNAUT_AUTOMERGE_REPOS`."""
    max_age: timedelta
    merge_method: str = "squash"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    """What the bot sees: a `SkipReason` fragment, and the waiting task's `error_message`."""
    category: str
    """Short label for counting (`unchanged`, `checks pending`, `behind`, …)."""


def _wait(reason: str, category: str) -> Decision:
    return Decision(Action.WAIT, reason, category)


def _checks_summary(pr: ObservedPr) -> str:
    if pr.failing_checks:
        return f"checks failing on {pr.head_sha[:12]}: {', '.join(sorted(pr.failing_checks))}"
    if pr.pending_checks:
        return f"checks pending on {pr.head_sha[:12]}: {', '.join(sorted(pr.pending_checks))}"
    return f"checks {pr.checks_state} on {pr.head_sha[:12]}"


def decide(tracked: Tracked, pr: ObservedPr, policy: MergePolicy, now: datetime) -> Decision:
    """The one next step for this pull request."""
    name = f"{tracked.repo}#{tracked.number}"
    base = pr.base_ref or tracked.base or "the base branch"
    if pr.state == "merged":
        return Decision(Action.SETTLE_MERGED, f"{name} was merged", "merged")
    if pr.state == "closed":
        by = f" by @{pr.closed_by}" if pr.closed_by else ""
        when = f" at {pr.closed_at.isoformat()}" if pr.closed_at else ""
        return Decision(
            Action.SETTLE_CLOSED,
            f"pull request {name} was closed without merge{by}{when}",
            "closed",
        )
    if now - tracked.progress_at > policy.max_age:
        hours = policy.max_age.total_seconds() / 3600
        return Decision(
            Action.EXPIRE,
            f"pull request {name} made no progress for {hours:g} h "
            f"(JUGGERNAUT_PR_MAX_AGE_HOURS); last seen: {_state_line(pr)}",
            "expired",
        )
    if pr.merge_state == "dirty" or pr.mergeable is False:
        if tracked.task_status == "blocked":
            return _wait(f"{name}: merge conflict with {base}", "conflict")
        return Decision(
            Action.BLOCK_CONFLICT,
            f"merge conflict with {base}: resolve it on {pr.head_ref or 'the branch'}; the task "
            "returns to awaiting_pr_merge when GitHub reports no conflict",
            "conflict",
        )
    if tracked.task_status == "blocked":
        return Decision(
            Action.UNBLOCK, f"{name}: the conflict with {base} is resolved", "unblocked"
        )
    if pr.merge_state == "unknown":
        return _wait(f"{name}: GitHub is still computing mergeability", "mergeability unknown")
    if pr.merge_state == "behind":
        if tracked.branch_updated_for == pr.head_sha:
            return _wait(
                f"{name}: behind {base}; the branch was already updated for this head",
                "behind",
            )
        return Decision(Action.UPDATE_BRANCH, f"{name}: behind {base}", "behind")
    if pr.checks_state == "failure":
        return _wait(_checks_summary(pr), "checks failing")
    if pr.is_draft:
        return _wait(f"{name} is a draft", "draft")
    if not policy.may_merge:
        return _wait(
            f"{name}: {_state_line(pr)}; the repository is not in JUGGERNAUT_AUTOMERGE_REPOS "
            "(followed, never merged by the bot)",
            "awaiting a person's merge",
        )
    if pr.review_decision not in (None, "APPROVED"):
        return _wait(f"{name}: review {pr.review_status.replace('_', ' ')}", "awaiting review")
    if pr.checks_state == "none":
        return _wait(
            f"{name}: no checks ran on {pr.head_sha[:12]} (no checks, no automatic merge)",
            "no checks",
        )
    if pr.checks_state != "success":
        return _wait(_checks_summary(pr), "checks pending")
    if pr.merge_state != "clean":
        return _wait(f"{name}: GitHub reports {pr.merge_state}", pr.merge_state)
    if tracked.merge_attempts >= MAX_MERGE_ATTEMPTS:
        return _wait(
            f"{name}: {tracked.merge_attempts} merge attempts on {pr.head_sha[:12]} did not "
            "merge it; merge it by hand or push a new head",
            "merge attempts exhausted",
        )
    return Decision(
        Action.MERGE,
        f"{name}: clean, checks passed on {pr.head_sha[:12]}, merging ({policy.merge_method})",
        "merging",
    )


def _state_line(pr: ObservedPr) -> str:
    return f"merge state {pr.merge_state}, checks {pr.checks_state}, review {pr.review_status}" + (
        ", draft" if pr.is_draft else ""
    )


def progress_signature(pr: ObservedPr) -> list[str]:
    """What counts as progress: a change of head, state, checks, review or merge state."""
    return [pr.state, pr.head_sha, pr.merge_state, pr.checks_state, pr.review_status]

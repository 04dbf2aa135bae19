"""`pr_tracking` as `pr_state_sensor` and the pull-request runs read and write it.

Our bookkeeping for a pull request lives under `metadata["juggernaut"]` (production's own
metadata keys are kept as they are): when progress was last seen, which head the branch was
updated for, how many merge calls were made for a head, who closed it, and a version that
every action bumps (the sensor's run keys include it, so a tick evaluated twice requests
nothing twice, while a new state can always be acted on).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from juggernaut_assets.db.enums import PrState, TaskStatus
from juggernaut_assets.db.models import GovernanceTask, PrTracking, utcnow
from juggernaut_assets.lib.merge_policy import Decision, Tracked, progress_signature
from juggernaut_assets.lib.pr_query import ObservedPr, PrRef
from juggernaut_assets.tasks.reap import as_utc

P = PrTracking.__table__
T = GovernanceTask.__table__
OURS = "juggernaut"
SETTLING_STATUSES = (TaskStatus.AWAITING_PR_MERGE.value, TaskStatus.BLOCKED.value)
"""Task states a tracked pull request can still move (its merge, close or conflict)."""


@dataclass
class FollowedPr:
    """One `pr_tracking` row, its task's state, and our bookkeeping."""

    id: str
    repo: str
    number: int
    url: str | None
    node_id: str | None
    task_id: str | None
    task_type: str | None
    task_status: str | None
    task_attempt: int
    task_error: str | None
    current_state: str | None
    head_sha: str | None
    merge_commit_sha: str | None
    merged_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    """As read: observations are written only if no action changed the row since."""
    metadata: dict[str, Any]
    ours: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.repo}#{self.number}"

    @property
    def ref(self) -> PrRef:
        return PrRef(self.id, self.repo, self.number, self.node_id)

    @property
    def base(self) -> str | None:
        return self.ours.get("base") or self.metadata.get("base")

    @property
    def version(self) -> int:
        return int(self.ours.get("version") or 0)

    def tracked(self, now: datetime) -> Tracked:
        progress = parse_time(self.ours.get("progress_at")) or as_utc(self.created_at) or now
        attempts = self.ours.get("merge_attempts") or {}
        return Tracked(
            key=self.id,
            repo=self.repo,
            number=self.number,
            task_id=self.task_id,
            task_status=self.task_status,
            base=self.base,
            progress_at=progress,
            branch_updated_for=self.ours.get("branch_updated_for"),
            merge_attempts=int(attempts.get("count") or 0)
            if attempts.get("head") == self.head_sha
            else 0,
        )


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "null")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _select() -> sa.Select:
    return sa.select(
        P.c.id,
        P.c.repo,
        P.c.pr_number,
        P.c.pr_url,
        P.c.node_id,
        P.c.task_id,
        P.c.current_state,
        P.c.head_sha,
        P.c.merge_commit_sha,
        P.c.merged_at,
        P.c.created_at,
        P.c.updated_at,
        sa.cast(P.c.metadata, sa.Text).label("metadata"),
        T.c.task_type,
        T.c.status.label("task_status"),
        T.c.attempt_count,
        T.c.error_message,
    ).select_from(P.outerjoin(T, T.c.id == P.c.task_id))


def _row(r: sa.Row) -> FollowedPr:
    metadata = _json_object(r.metadata)
    ours = metadata.get(OURS)
    return FollowedPr(
        id=str(r.id),
        repo=r.repo,
        number=int(r.pr_number),
        url=r.pr_url,
        node_id=r.node_id,
        task_id=str(r.task_id) if r.task_id else None,
        task_type=r.task_type,
        task_status=r.task_status,
        task_attempt=r.attempt_count or 0,
        task_error=r.error_message,
        current_state=r.current_state,
        head_sha=r.head_sha,
        merge_commit_sha=r.merge_commit_sha,
        merged_at=r.merged_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
        metadata=metadata,
        ours=dict(ours) if isinstance(ours, dict) else {},
    )


def open_pull_requests(engine: Engine, limit: int) -> list[FollowedPr]:
    """Tracked pull requests GitHub last called open, least recently polled first."""
    query = (
        _select()
        .where(P.c.current_state == PrState.OPEN.value)
        .order_by(P.c.last_polled_at.is_not(None), P.c.last_polled_at, P.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def unsettled_pull_requests(engine: Engine, limit: int = 500) -> list[FollowedPr]:
    """Pull requests seen merged or closed whose task has not been settled yet (a settle run
    that failed or never ran)."""
    query = (
        _select()
        .where(
            P.c.current_state.in_([PrState.MERGED.value, PrState.CLOSED.value]),
            T.c.status.in_(SETTLING_STATUSES),
        )
        .order_by(P.c.updated_at)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def load(conn: Connection, tracking_id: str) -> FollowedPr | None:
    row = conn.execute(_select().where(P.c.id == tracking_id)).first()
    return _row(row) if row else None


def observed_from_row(pr: FollowedPr) -> ObservedPr:
    """What was last seen of a merged or closed pull request, rebuilt from its row."""
    return ObservedPr(
        repo=pr.repo,
        number=pr.number,
        node_id=pr.node_id,
        state=pr.current_state or "",
        is_draft=False,
        mergeable=None,
        merge_state=pr.ours.get("merge_state") or "unknown",
        review_decision=None,
        head_sha=pr.head_sha or "",
        head_ref=pr.ours.get("head_ref") or "",
        base_ref=pr.base or "",
        merged_at=as_utc(pr.merged_at),
        merged_by=pr.ours.get("merged_by"),
        merge_commit_sha=pr.merge_commit_sha,
        closed_at=parse_time(pr.ours.get("closed_at")),
        closed_by=pr.ours.get("closed_by"),
        url=pr.url,
    )


def _with_ours(pr: FollowedPr, **changes: Any) -> dict[str, Any]:
    ours = {**pr.ours, **changes}
    return {**pr.metadata, OURS: ours}


def write_observations(
    engine: Engine,
    seen: Sequence[tuple[FollowedPr, ObservedPr, Decision]],
    now: datetime | None = None,
) -> None:
    """Store what GitHub said about each pull request.

    A row an action changed since it was read (its `updated_at` moved) is left as the action
    wrote it; the next tick reads it again. Also writes the reason a pull request waits into
    its task's `error_message` (only while the task is `awaiting_pr_merge`, and only when it
    changed).
    """
    now = now or utcnow()
    rows: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for pr, obs, decision in seen:
        signature = progress_signature(obs)
        changes: dict[str, Any] = {
            "signature": signature,
            "merge_state": obs.merge_state,
            "head_ref": obs.head_ref,
            "base": obs.base_ref or pr.base,
            "failing_checks": obs.failing_checks,
            "pending_checks": obs.pending_checks,
            "decision": decision.reason,
        }
        if signature != pr.ours.get("signature"):
            changes["progress_at"] = now.isoformat()
        if obs.closed_by:
            changes["closed_by"] = obs.closed_by
        if obs.closed_at:
            changes["closed_at"] = obs.closed_at.isoformat()
        if obs.merged_by:
            changes["merged_by"] = obs.merged_by
        pr.metadata = _with_ours(pr, **changes)
        pr.ours = pr.metadata[OURS]
        rows.append(
            {
                "b_id": pr.id,
                "b_seen": pr.updated_at,
                "b_state": obs.state,
                "b_review": obs.review_status,
                "b_mergeable": obs.mergeable,
                "b_merge_state": obs.merge_state,
                "b_checks": obs.checks_state,
                "b_head": obs.head_sha or pr.head_sha,
                "b_merged_at": obs.merged_at,
                "b_merge_sha": obs.merge_commit_sha,
                "b_node": obs.node_id or pr.node_id,
                "b_metadata": pr.metadata,
            }
        )
        if (
            decision.action.value == "wait"
            and pr.task_id
            and pr.task_status == TaskStatus.AWAITING_PR_MERGE.value
            and pr.task_error != decision.reason
        ):
            notes.append({"b_task": pr.task_id, "b_note": decision.reason})
    if not rows:
        return
    update = (
        P.update()
        .where(
            P.c.id == sa.bindparam("b_id"),
            P.c.updated_at.is_not_distinct_from(sa.bindparam("b_seen", type_=P.c.updated_at.type)),
        )
        .values(
            current_state=sa.bindparam("b_state"),
            review_status=sa.bindparam("b_review"),
            mergeable=sa.bindparam("b_mergeable"),
            merge_state=sa.bindparam("b_merge_state"),
            checks_state=sa.bindparam("b_checks"),
            head_sha=sa.bindparam("b_head"),
            merged_at=sa.bindparam("b_merged_at"),
            merge_commit_sha=sa.bindparam("b_merge_sha"),
            node_id=sa.bindparam("b_node"),
            metadata=sa.bindparam("b_metadata", type_=P.c.metadata.type),
            last_polled_at=now,
            updated_at=now,
        )
    )
    note = (
        T.update()
        .where(T.c.id == sa.bindparam("b_task"), T.c.status == TaskStatus.AWAITING_PR_MERGE.value)
        .values(error_message=sa.bindparam("b_note"), updated_at=now)
    )
    with engine.begin() as conn:
        conn.execute(update, rows)
        if notes:
            conn.execute(note, notes)


def mark_missing(engine: Engine, missing: Sequence[tuple[FollowedPr, str]]) -> None:
    """Record, on each row, why GitHub did not answer for it (it is polled again later)."""
    if not missing:
        return
    now = utcnow()
    with engine.begin() as conn:
        for pr, reason in missing:
            conn.execute(
                P.update()
                .where(P.c.id == pr.id)
                .values(metadata=_with_ours(pr, missing=reason), last_polled_at=now)
            )


def record_action(conn: Connection, pr: FollowedPr, **changes: Any) -> None:
    """Bump the row's version (an action ran) and store what the action learnt."""
    pr.metadata = _with_ours(pr, version=pr.version + 1, **changes)
    pr.ours = pr.metadata[OURS]
    conn.execute(
        P.update().where(P.c.id == pr.id).values(metadata=pr.metadata, updated_at=utcnow())
    )

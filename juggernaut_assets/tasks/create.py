"""Creating tasks, deduplicated by `dedupe_key`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from juggernaut_assets.db.enums import Priority, TaskStatus
from juggernaut_assets.db.models import GovernanceTask


def add_task(
    session: Session,
    task_type: str,
    payload: Any,
    *,
    title: str | None = None,
    description: str | None = None,
    priority: str = Priority.MEDIUM,
    dedupe_key: str | None = None,
    requires_approval: bool = False,
    approval_reason: str | None = None,
    depends_on: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    goal_id: str | None = None,
    parent_task_id: str | None = None,
    max_attempts: int = 3,
) -> tuple[GovernanceTask, bool]:
    """Insert a pending task; returns `(task, created)`.

    With a `dedupe_key` that already exists, the existing task is returned and nothing is
    written (`created` is False). Priority must be one of production's `task_priority` labels.
    """
    if priority not in Priority.__members__.values():
        raise ValueError(
            f"unknown priority {priority!r}; expected one of {', '.join(p.value for p in Priority)}"
        )
    if dedupe_key is not None:
        existing = session.scalar(
            sa.select(GovernanceTask).where(GovernanceTask.dedupe_key == dedupe_key)
        )
        if existing is not None:
            return existing, False
    task = GovernanceTask(
        task_type=task_type,
        payload=payload,
        title=title or task_type,
        description=description,
        priority=str(priority),
        status=TaskStatus.PENDING.value,
        dedupe_key=dedupe_key,
        requires_approval=requires_approval,
        approval_reason=approval_reason,
        depends_on=depends_on or [],
        metadata_=metadata or {},
        goal_id=goal_id,
        parent_task_id=parent_task_id,
        attempt_count=0,
        max_attempts=max_attempts,
    )
    session.add(task)
    session.flush()
    return task, True

"""Creating tasks, deduplicated by `dedupe_key`.

A task with a `dedupe_key` is written with `INSERT ... ON CONFLICT DO NOTHING` on the partial
unique index over `dedupe_key`, then read back: two writers adding the same key at the same
moment both get the one task, and exactly one of them is told it created it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from juggernaut_assets.db.enums import Priority, TaskStatus
from juggernaut_assets.db.models import GovernanceTask

T = GovernanceTask.__table__
DEDUPE_INDEX_WHERE = "dedupe_key IS NOT NULL"
INSERTS: dict[str, Callable[[type[GovernanceTask]], Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def _insert_once(session: Session, fields: dict[str, Any]) -> bool:
    """Insert a task (ORM attribute names) unless one with its `dedupe_key` exists; True when
    it was inserted. Column defaults (id, timestamps) apply as for any insert."""
    dialect = session.get_bind().dialect.name
    if dialect not in INSERTS:
        raise NotImplementedError(f"deduplicated inserts are not supported on {dialect}")
    statement = (
        INSERTS[dialect](GovernanceTask)
        .values(**fields)
        .on_conflict_do_nothing(
            index_elements=[T.c.dedupe_key], index_where=sa.text(DEDUPE_INDEX_WHERE)
        )
        .returning(T.c.id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


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

    With a `dedupe_key` that already exists (or that a concurrent writer has just inserted),
    the existing task is returned and nothing is written (`created` is False). Priority must
    be one of production's `task_priority` labels.
    """
    if priority not in Priority.__members__.values():
        raise ValueError(
            f"unknown priority {priority!r}; expected one of {', '.join(p.value for p in Priority)}"
        )
    fields = {
        "task_type": task_type,
        "payload": payload,
        "title": title or task_type,
        "description": description,
        "priority": str(priority),
        "status": TaskStatus.PENDING.value,
        "dedupe_key": dedupe_key,
        "requires_approval": requires_approval,
        "approval_reason": approval_reason,
        "depends_on": depends_on or [],
        "metadata_": metadata or {},
        "goal_id": goal_id,
        "parent_task_id": parent_task_id,
        "attempt_count": 0,
        "max_attempts": max_attempts,
    }
    if dedupe_key is None:
        task = GovernanceTask(**fields)
        session.add(task)
        session.flush()
        return task, True
    created = _insert_once(session, fields)
    task = session.scalars(
        sa.select(GovernanceTask).where(GovernanceTask.dedupe_key == dedupe_key)
    ).one()
    return task, created

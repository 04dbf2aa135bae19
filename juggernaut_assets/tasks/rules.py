"""Pure rules of the queue: run order, readiness, retry backoff. No I/O here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from juggernaut_assets.db.enums import PRIORITY_ORDER, Priority, TaskStatus
from juggernaut_assets.execution.registry import canonical_task_type

RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
DEFAULT_MAX_ATTEMPTS = 3


def priority_rank(priority: str | None) -> int:
    """critical=0 … background=5; a missing or unknown label runs as `medium`."""
    try:
        return PRIORITY_ORDER.index(priority or "")
    except ValueError:
        return PRIORITY_ORDER.index(Priority.MEDIUM)


def retry_delay(attempts_made: int) -> timedelta:
    """Exponential backoff: 30 s, 60 s, 120 s, … capped at one hour."""
    return min(RETRY_BASE * (2 ** min(max(attempts_made - 1, 0), 20)), RETRY_CAP)


class Readiness(StrEnum):
    CLAIM = "claim"
    WAIT_DEPENDENCIES = "wait_dependencies"
    BLOCK = "block"
    NEEDS_APPROVAL = "needs_approval"
    NO_HANDLER = "no_handler"
    NO_ATTEMPTS_LEFT = "no_attempts_left"


@dataclass(frozen=True)
class Candidate:
    id: str
    task_type: str
    depends_on: Any
    requires_approval: bool | None
    approved_at: datetime | None
    approval_reason: str | None
    attempt_count: int | None = 0
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class Verdict:
    readiness: Readiness
    reason: str = ""


def dependency_ids(depends_on: Any) -> list[str]:
    """The dependency list as strings; `depends_on` may be null, a list, or a JSON string."""
    if depends_on in (None, "", []):
        return []
    if isinstance(depends_on, str):
        try:
            depends_on = json.loads(depends_on)
        except json.JSONDecodeError:
            return [depends_on]
    if not isinstance(depends_on, list):
        return [str(depends_on)]
    return [str(d) for d in depends_on]


def is_task_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def attempts_left(attempt_count: int | None, max_attempts: int | None) -> int:
    """How many more attempts a task may start (a missing `max_attempts` means the default)."""
    return (max_attempts or DEFAULT_MAX_ATTEMPTS) - (attempt_count or 0)


def judge(candidate: Candidate, dependency_status: Mapping[str, str | None]) -> Verdict:
    """Decide what the sensor does with a pending, due task."""
    if attempts_left(candidate.attempt_count, candidate.max_attempts) <= 0:
        used = candidate.attempt_count or 0
        return Verdict(
            Readiness.NO_ATTEMPTS_LEFT,
            f"no attempts left ({used} of {candidate.max_attempts or DEFAULT_MAX_ATTEMPTS} "
            "used); `juggernaut tasks retry ID` gives it a fresh budget",
        )
    no_handler = f"no handler for task type '{candidate.task_type}'"
    if canonical_task_type(candidate.task_type) is None:
        if candidate.requires_approval and candidate.approved_at is None:
            # The spend (or other) reason is what the operator has to decide on first.
            reason = candidate.approval_reason or "this task requires an operator's approval"
            return Verdict(Readiness.NEEDS_APPROVAL, f"{reason} ({no_handler}: a person does it)")
        return Verdict(Readiness.NO_HANDLER, no_handler)
    deps = dependency_ids(candidate.depends_on)
    for dep in deps:
        if not is_task_id(dep):
            return Verdict(Readiness.BLOCK, f"dependency '{dep}' is not a task id")
        status = dependency_status.get(dep)
        if status is None:
            return Verdict(Readiness.BLOCK, f"dependency {dep} does not exist")
        if status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return Verdict(Readiness.BLOCK, f"dependency {dep} is {status}")
    if any(dependency_status.get(dep) != TaskStatus.COMPLETED for dep in deps):
        return Verdict(Readiness.WAIT_DEPENDENCIES)
    if candidate.requires_approval and candidate.approved_at is None:
        return Verdict(
            Readiness.NEEDS_APPROVAL,
            candidate.approval_reason or "this task requires an operator's approval",
        )
    return Verdict(Readiness.CLAIM)


def all_dependency_ids(candidates: Sequence[Candidate]) -> set[str]:
    return {d for c in candidates for d in dependency_ids(c.depends_on) if is_task_id(d)}

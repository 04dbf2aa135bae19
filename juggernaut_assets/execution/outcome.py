"""What a handler can say about a task: done with artifacts, or why it is not done."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from juggernaut_assets.db.enums import ArtifactKind, TaskStatus


@dataclass
class Artifact:
    """Something real a task produced; verified by the executor before the task completes."""

    kind: ArtifactKind
    uri: str | None = None
    external_id: str | None = None
    sha256: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    verified: bool = False
    verification_detail: str = ""


@dataclass
class HandlerResult:
    """A handler's report: its artifacts, a one-line summary, and the state to move to.

    `status` is `completed` for finished work, or a waiting state (e.g. `awaiting_pr_merge`)
    when the work continues outside this run.
    """

    artifacts: list[Artifact]
    summary: str
    status: TaskStatus = TaskStatus.COMPLETED


class TaskRejected(Exception):
    """Bad input that no retry can fix: the task fails with this message."""


class TaskBlocked(Exception):
    """Something outside the task is missing (a token, a service): the task is `blocked`."""


class NeedsApproval(Exception):
    """A person has to decide: the task waits in `waiting_approval` with this reason."""


class RetriableError(Exception):
    """A transient failure (a 5xx, a timeout): the task goes back to the queue with backoff."""


class Ending(StrEnum):
    """How an attempt ended; decides the task's next state."""

    COMPLETED = "completed"
    AWAITING = "awaiting"
    FAILED = "failed"
    BLOCKED = "blocked"
    WAITING_APPROVAL = "waiting_approval"
    RETRY = "retry"


@dataclass
class TaskOutcome:
    task_id: str
    task_type: str
    ending: Ending
    message: str
    attempt: int
    artifacts: list[Artifact] = field(default_factory=list)
    next_status: TaskStatus | None = None
    duration_s: float = 0.0
    recorded: bool = False

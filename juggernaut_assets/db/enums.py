"""The vocabulary of the governance tables: statuses, priorities and artifact kinds.

Values follow the production JUGGERNAUT database; code compares against these members,
never against repeated string literals.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    AWAITING_PR_MERGE = "awaiting_pr_merge"
    WAITING_APPROVAL = "waiting_approval"
    BLOCKED = "blocked"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class Priority(StrEnum):
    """Labels of production's `task_priority` enum, in run order (first runs first)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    NORMAL = "normal"
    LOW = "low"
    BACKGROUND = "background"


PRIORITY_ORDER: tuple[str, ...] = tuple(p.value for p in Priority)


class VerificationStatus(StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    REJECTED = "rejected"


class ArtifactKind(StrEnum):
    PULL_REQUEST = "pull_request"
    MERGE_COMMIT = "merge_commit"
    COMMIT = "commit"
    QUERY_RESULT = "query_result"
    FILE = "file"
    HTTP_RESPONSE = "http_response"
    MESSAGE = "message"
    ASSET_MATERIALIZATION = "asset_materialization"
    DOMAIN_REGISTRATION = "domain_registration"
    LLM_EXCHANGE = "llm_exchange"
    DNS_RECORD = "dns_record"
    EMAIL_MESSAGE = "email_message"
    RESEARCH_REPORT = "research_report"


class PrState(StrEnum):
    """`pr_tracking.current_state`."""

    OPEN = "open"
    CLOSED = "closed"
    MERGED = "merged"


class ReviewStatus(StrEnum):
    """`pr_tracking.review_status`, from GraphQL's `reviewDecision`."""

    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    PENDING = "pending"
    NONE = "none"


class MergeState(StrEnum):
    """`pr_tracking.merge_state`: GraphQL's `mergeStateStatus` in lower case."""

    CLEAN = "clean"
    BEHIND = "behind"
    DIRTY = "dirty"
    BLOCKED = "blocked"
    UNSTABLE = "unstable"
    HAS_HOOKS = "has_hooks"
    UNKNOWN = "unknown"


class ChecksState(StrEnum):
    """`pr_tracking.checks_state`: the head commit's checks taken together."""

    SUCCESS = "success"
    FAILURE = "failure"
    PENDING = "pending"
    NONE = "none"


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


class SpendState(StrEnum):
    """`spend_ledger.state`."""

    RESERVED = "reserved"
    CHARGED = "charged"
    RELEASED = "released"

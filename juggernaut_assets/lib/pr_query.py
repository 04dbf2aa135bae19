"""Reading the state of many pull requests in one GitHub GraphQL request (pure).

A query reads up to `MAX_PRS_PER_QUERY` pull requests: by `nodes(ids:)` when the node id is
known, else by alias inside its repository
(`r0: repository(owner:, name:) { p12: pullRequest(number: 12) { ...S } }`). The answer is
turned into one `ObservedPr` per pull request, with GitHub's enums in the lower-case spelling
`pr_tracking` stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_PRS_PER_QUERY = 100
"""`nodes(ids:)` takes at most 100 ids; a query of 100 pull requests costs about 51 points."""
CHECK_CONTEXTS = 50

FRAGMENT = """
fragment S on PullRequest {
  id number state merged isDraft mergeable mergeStateStatus reviewDecision
  headRefOid headRefName baseRefName mergedAt closedAt updatedAt url
  mergedBy { login } mergeCommit { oid }
  repository { nameWithOwner }
  timelineItems(last: 1, itemTypes: [CLOSED_EVENT]) {
    nodes { ... on ClosedEvent { actor { login } createdAt } }
  }
  commits(last: 1) { nodes { commit { oid statusCheckRollup { state
    contexts(first: CONTEXTS) { totalCount nodes { __typename
      ... on CheckRun { name status conclusion }
      ... on StatusContext { context state } } } } } } }
}
""".replace("CONTEXTS", str(CHECK_CONTEXTS))

PASSING_CONCLUSIONS = frozenset({"SUCCESS", "NEUTRAL", "SKIPPED"})
FAILING_CONCLUSIONS = frozenset(
    {"FAILURE", "TIMED_OUT", "CANCELLED", "ACTION_REQUIRED", "STALE", "STARTUP_FAILURE"}
)
_STATUS_STATES = {"SUCCESS": "pass", "FAILURE": "fail", "ERROR": "fail"}
_REVIEW = {"APPROVED": "approved", "CHANGES_REQUESTED": "changes_requested"}


@dataclass(frozen=True)
class PrRef:
    """A tracked pull request to read: its `pr_tracking` id, repository, number, node id."""

    key: str
    repo: str
    number: int
    node_id: str | None = None


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str
    """`pass`, `fail` or `pending`."""
    detail: str = ""


@dataclass(frozen=True)
class ObservedPr:
    """What GitHub said about one pull request."""

    repo: str
    number: int
    node_id: str | None
    state: str
    """`open`, `closed` or `merged`."""
    is_draft: bool
    mergeable: bool | None
    merge_state: str
    """`clean`, `behind`, `dirty`, `blocked`, `unstable`, `has_hooks`, `unknown`, `draft`."""
    review_decision: str | None
    """GraphQL's `reviewDecision` as sent (None when reviews are not required)."""
    head_sha: str
    head_ref: str
    base_ref: str
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    url: str | None = None
    checks: tuple[Check, ...] = ()
    checks_for_head: bool = True
    """False when the checks GitHub returned belong to another commit than the head."""
    checks_truncated: bool = False

    @property
    def review_status(self) -> str:
        """`pr_tracking.review_status`: approved, changes_requested, pending (required, not
        given yet) or none (not required)."""
        if self.review_decision is None:
            return "none"
        return _REVIEW.get(self.review_decision, "pending")

    @property
    def failing_checks(self) -> list[str]:
        return [c.name for c in self.checks if c.outcome == "fail"]

    @property
    def pending_checks(self) -> list[str]:
        return [c.name for c in self.checks if c.outcome == "pending"]

    @property
    def checks_state(self) -> str:
        """`success` only when there is at least one check, every check passed and at least
        one of them ran (all `skipped` is not success); `failure` when any failed; `pending`
        while any has no conclusion, the list was cut short, or it belongs to another
        commit; `none` without checks."""
        if not self.checks:
            return "none"
        if self.failing_checks:
            return "failure"
        if self.pending_checks or self.checks_truncated or not self.checks_for_head:
            return "pending"
        if all(c.detail == "SKIPPED" for c in self.checks):
            return "pending"
        return "success"


@dataclass(frozen=True)
class RateLimit:
    cost: int
    remaining: int
    reset_at: str | None
    limit: int | None = None


@dataclass
class QueryAnswer:
    observed: dict[str, ObservedPr] = field(default_factory=dict)
    """By `PrRef.key`."""
    missing: dict[str, str] = field(default_factory=dict)
    """`PrRef.key` → why it could not be read (deleted, no access)."""
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class PrQuery:
    text: str
    by_node: dict[str, list[str]]
    """node id → keys of the refs read through `nodes(ids:)`."""
    by_alias: dict[tuple[str, str], str]
    """(repository alias, pull request alias) → key."""
    node_ids: list[str]


def chunks(refs: Sequence[PrRef], size: int = MAX_PRS_PER_QUERY) -> Iterator[list[PrRef]]:
    """Refs in groups of at most `size`, pull requests of one repository kept together."""
    ordered = sorted(refs, key=lambda r: (r.repo.lower(), r.number))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def build_query(refs: Iterable[PrRef]) -> PrQuery:
    """One GraphQL document reading every ref (at most `MAX_PRS_PER_QUERY`)."""
    refs = list(refs)
    if len(refs) > MAX_PRS_PER_QUERY:
        raise ValueError(f"at most {MAX_PRS_PER_QUERY} pull requests per query")
    by_node: dict[str, list[str]] = {}
    by_repo: dict[str, dict[int, list[str]]] = {}
    for ref in refs:
        if ref.node_id:
            by_node.setdefault(ref.node_id, []).append(ref.key)
        else:
            by_repo.setdefault(ref.repo, {}).setdefault(ref.number, []).append(ref.key)
    parts = ["rateLimit { cost remaining resetAt limit }"]
    node_ids = list(by_node)
    if node_ids:
        parts.append(f"nodes(ids: {json.dumps(node_ids)}) {{ ... on PullRequest {{ ...S }} }}")
    by_alias: dict[tuple[str, str], str] = {}
    for i, (repo, numbers) in enumerate(sorted(by_repo.items())):
        owner, _, name = repo.partition("/")
        pulls = []
        for number, keys in sorted(numbers.items()):
            pulls.append(f"p{number}: pullRequest(number: {int(number)}) {{ ...S }}")
            for key in keys:
                by_alias[(f"r{i}", f"p{number}")] = key
        parts.append(
            f"r{i}: repository(owner: {json.dumps(owner)}, name: {json.dumps(name)}) "
            f"{{ {' '.join(pulls)} }}"
        )
    text = "query {\n  " + "\n  ".join(parts) + "\n}\n" + FRAGMENT
    return PrQuery(text, by_node, by_alias, node_ids)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _login(value: Any) -> str | None:
    return value.get("login") if isinstance(value, Mapping) else None


def _check(node: Mapping[str, Any]) -> Check | None:
    if node.get("__typename") == "CheckRun" or "conclusion" in node:
        conclusion = node.get("conclusion")
        if conclusion in PASSING_CONCLUSIONS:
            outcome = "pass"
        elif conclusion in FAILING_CONCLUSIONS:
            outcome = "fail"
        else:
            outcome = "pending"
        return Check(str(node.get("name") or "?"), outcome, str(conclusion or node.get("status")))
    if node.get("__typename") == "StatusContext" or "context" in node:
        state = str(node.get("state") or "")
        return Check(str(node.get("context") or "?"), _STATUS_STATES.get(state, "pending"), state)
    return None


def parse_pull_request(node: Mapping[str, Any]) -> ObservedPr:
    """One `...S` object → ObservedPr."""
    head = str(node.get("headRefOid") or "")
    state = str(node.get("state") or "").lower()
    if node.get("merged"):
        state = "merged"
    commits = ((node.get("commits") or {}).get("nodes") or [None])[-1] or {}
    commit = commits.get("commit") or {}
    rollup = commit.get("statusCheckRollup") or {}
    contexts = rollup.get("contexts") or {}
    nodes = [n for n in contexts.get("nodes") or [] if isinstance(n, Mapping)]
    checks = tuple(c for c in (_check(n) for n in nodes) if c is not None)
    closed = ((node.get("timelineItems") or {}).get("nodes") or [None])[-1] or {}
    mergeable = {"MERGEABLE": True, "CONFLICTING": False}.get(str(node.get("mergeable")))
    return ObservedPr(
        repo=str((node.get("repository") or {}).get("nameWithOwner") or ""),
        number=int(node.get("number") or 0),
        node_id=node.get("id"),
        state=state,
        is_draft=bool(node.get("isDraft")),
        mergeable=mergeable,
        merge_state=str(node.get("mergeStateStatus") or "UNKNOWN").lower(),
        review_decision=node.get("reviewDecision"),
        head_sha=head,
        head_ref=str(node.get("headRefName") or ""),
        base_ref=str(node.get("baseRefName") or ""),
        merged_at=_time(node.get("mergedAt")),
        merged_by=_login(node.get("mergedBy")),
        merge_commit_sha=(node.get("mergeCommit") or {}).get("oid"),
        closed_at=_time(node.get("closedAt")) or _time(closed.get("createdAt")),
        closed_by=_login(closed.get("actor")),
        url=node.get("url"),
        checks=checks,
        checks_for_head=not commit or commit.get("oid") in (None, head),
        checks_truncated=int(contexts.get("totalCount") or 0) > len(nodes),
    )


def parse_answer(query: PrQuery, data: Mapping[str, Any]) -> QueryAnswer:
    """The `data` of an answer to `query` → observations by key, and what was missing."""
    answer = QueryAnswer()
    rate = data.get("rateLimit")
    if isinstance(rate, Mapping):
        answer.rate_limit = RateLimit(
            int(rate.get("cost") or 0),
            int(rate.get("remaining") or 0),
            rate.get("resetAt"),
            rate.get("limit"),
        )
    for node_id, node in zip(query.node_ids, data.get("nodes") or [], strict=False):
        for key in query.by_node[node_id]:
            if isinstance(node, Mapping) and node.get("number"):
                answer.observed[key] = parse_pull_request(node)
            else:
                answer.missing[key] = f"GitHub knows no pull request with node id {node_id}"
    for (repo_alias, pr_alias), key in query.by_alias.items():
        repo = data.get(repo_alias)
        pull = repo.get(pr_alias) if isinstance(repo, Mapping) else None
        if isinstance(pull, Mapping):
            answer.observed[key] = parse_pull_request(pull)
        else:
            what = "repository" if not isinstance(repo, Mapping) else "pull request"
            answer.missing[key] = f"GitHub answered no {what} (deleted, or the token cannot see it)"
    for node_id in query.node_ids:
        for key in query.by_node[node_id]:
            if key not in answer.observed and key not in answer.missing:
                answer.missing[key] = f"GitHub answered nothing for node id {node_id}"
    return answer

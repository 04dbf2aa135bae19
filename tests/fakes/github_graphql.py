"""GitHub's GraphQL API over the fake's in-memory state, executed by graphql-core.

A real schema (a subset of GitHub's SDL, with GitHub's names, types and enums) and resolvers
over `FakeGitHub`'s repositories, so aliases, fragments, inline fragments and variables work as
on GitHub. Before execution each query is measured GitHub's way: every connection needs
`first` or `last` in 1–100 (`MISSING_PAGINATION_BOUNDARIES` / `EXCESSIVE_PAGINATION`),
`nodes(ids:)` takes at most 100 ids, and the cost is the number of requests its connections
need (a connection nested in one of `first: N`, or under `nodes` of N ids, needs N) over 100,
rounded, at least 1. The cost is spent from the server's `graphql_remaining` (reset to
`graphql_limit` at `graphql_reset_at`); a query that costs more than what remains is answered
GitHub's way: HTTP 200, `errors: [{"type": "RATE_LIMITED", ...}]`, no `data`, with
`x-ratelimit-remaining` and `x-ratelimit-reset` headers (sent on every answer).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    build_schema,
    execute,
    get_named_type,
    parse,
    validate,
    value_from_ast_untyped,
)

if TYPE_CHECKING:
    from tests.fakes.github_server import (
        CheckRun,
        CommitStatus,
        FakeGitHub,
        FakePull,
        FakeRepo,
        PullEvent,
        PullState,
    )

SDL = """
scalar DateTime
scalar URI
scalar GitObjectID

interface Node { id: ID! }
interface Actor { login: String! url: URI! }
type User implements Node & Actor { id: ID! login: String! url: URI! }
type Bot implements Node & Actor { id: ID! login: String! url: URI! }

type RateLimit {
  cost: Int!
  limit: Int!
  nodeCount: Int!
  remaining: Int!
  resetAt: DateTime!
  used: Int!
}

type PageInfo {
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
}

type Query {
  rateLimit: RateLimit
  viewer: User!
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  repository(owner: String!, name: String!, followRenames: Boolean = true): Repository
}

type RepositoryOwner { login: String! }

enum PullRequestState { OPEN CLOSED MERGED }
enum MergeableState { MERGEABLE CONFLICTING UNKNOWN }
enum MergeStateStatus { CLEAN BEHIND DIRTY BLOCKED UNSTABLE HAS_HOOKS UNKNOWN DRAFT }
enum PullRequestReviewDecision { APPROVED CHANGES_REQUESTED REVIEW_REQUIRED }
enum PullRequestReviewState { PENDING COMMENTED APPROVED CHANGES_REQUESTED DISMISSED }
enum StatusState { SUCCESS FAILURE ERROR PENDING EXPECTED }
enum CheckStatusState { QUEUED IN_PROGRESS COMPLETED WAITING PENDING REQUESTED }
enum CheckConclusionState {
  SUCCESS FAILURE NEUTRAL CANCELLED TIMED_OUT ACTION_REQUIRED STALE SKIPPED STARTUP_FAILURE
}
enum PullRequestTimelineItemsItemType { CLOSED_EVENT MERGED_EVENT REOPENED_EVENT }

type Repository implements Node {
  id: ID!
  name: String!
  nameWithOwner: String!
  owner: RepositoryOwner!
  url: URI!
  defaultBranchRef: Ref
  ref(qualifiedName: String!): Ref
  pullRequest(number: Int!): PullRequest
  pullRequests(
    first: Int, last: Int, after: String, before: String, states: [PullRequestState!]
  ): PullRequestConnection!
}

type Ref implements Node { id: ID! name: String! prefix: String! target: Commit }

type PullRequest implements Node {
  id: ID!
  number: Int!
  title: String!
  body: String!
  url: URI!
  permalink: URI!
  state: PullRequestState!
  closed: Boolean!
  merged: Boolean!
  isDraft: Boolean!
  mergeable: MergeableState!
  mergeStateStatus: MergeStateStatus!
  reviewDecision: PullRequestReviewDecision
  headRefName: String!
  headRefOid: GitObjectID!
  baseRefName: String!
  baseRefOid: GitObjectID!
  headRef: Ref
  baseRef: Ref
  createdAt: DateTime!
  updatedAt: DateTime!
  mergedAt: DateTime
  closedAt: DateTime
  author: Actor
  mergedBy: Actor
  mergeCommit: Commit
  repository: Repository!
  commits(first: Int, last: Int, after: String, before: String): PullRequestCommitConnection!
  reviews(
    first: Int, last: Int, after: String, before: String, states: [PullRequestReviewState!]
  ): PullRequestReviewConnection
  timelineItems(
    first: Int, last: Int, after: String, before: String,
    itemTypes: [PullRequestTimelineItemsItemType!], since: DateTime
  ): PullRequestTimelineItemsConnection!
}

type PullRequestConnection {
  nodes: [PullRequest]
  edges: [PullRequestEdge]
  pageInfo: PageInfo!
  totalCount: Int!
}
type PullRequestEdge { cursor: String! node: PullRequest }

type PullRequestCommit implements Node { id: ID! commit: Commit! url: URI! }
type PullRequestCommitConnection {
  nodes: [PullRequestCommit]
  edges: [PullRequestCommitEdge]
  pageInfo: PageInfo!
  totalCount: Int!
}
type PullRequestCommitEdge { cursor: String! node: PullRequestCommit }

type PullRequestReview implements Node {
  id: ID!
  author: Actor
  state: PullRequestReviewState!
  submittedAt: DateTime
  commit: Commit
}
type PullRequestReviewConnection {
  nodes: [PullRequestReview]
  edges: [PullRequestReviewEdge]
  pageInfo: PageInfo!
  totalCount: Int!
}
type PullRequestReviewEdge { cursor: String! node: PullRequestReview }

type ClosedEvent implements Node { id: ID! actor: Actor createdAt: DateTime! }
type MergedEvent implements Node {
  id: ID! actor: Actor createdAt: DateTime! commit: Commit mergeRefName: String!
}
type ReopenedEvent implements Node { id: ID! actor: Actor createdAt: DateTime! }
union PullRequestTimelineItems = ClosedEvent | MergedEvent | ReopenedEvent
type PullRequestTimelineItemsConnection {
  nodes: [PullRequestTimelineItems]
  edges: [PullRequestTimelineItemsEdge]
  pageInfo: PageInfo!
  totalCount: Int!
}
type PullRequestTimelineItemsEdge { cursor: String! node: PullRequestTimelineItems }

type Commit implements Node {
  id: ID!
  oid: GitObjectID!
  abbreviatedOid: String!
  message: String!
  messageHeadline: String!
  committedDate: DateTime!
  url: URI!
  statusCheckRollup: StatusCheckRollup
}

type StatusCheckRollup implements Node {
  id: ID!
  state: StatusState!
  commit: Commit
  contexts(
    first: Int, last: Int, after: String, before: String
  ): StatusCheckRollupContextConnection!
}
union StatusCheckRollupContext = CheckRun | StatusContext
type StatusCheckRollupContextConnection {
  nodes: [StatusCheckRollupContext]
  edges: [StatusCheckRollupContextEdge]
  pageInfo: PageInfo!
  totalCount: Int!
  checkRunCount: Int!
  statusContextCount: Int!
}
type StatusCheckRollupContextEdge { cursor: String! node: StatusCheckRollupContext }

type CheckRun implements Node {
  id: ID!
  databaseId: Int
  name: String!
  status: CheckStatusState!
  conclusion: CheckConclusionState
  startedAt: DateTime
  completedAt: DateTime
  detailsUrl: URI
  url: URI!
  isRequired(pullRequestNumber: Int, pullRequestId: ID): Boolean!
}

type StatusContext implements Node {
  id: ID!
  context: String!
  state: StatusState!
  description: String
  targetUrl: URI
  createdAt: DateTime!
  isRequired(pullRequestNumber: Int, pullRequestId: ID): Boolean!
}
"""

SCHEMA: GraphQLSchema = build_schema(SDL)
MAX_LIMIT = 100
MAX_NODES = 500_000
ITEM_TYPES = {
    "CLOSED_EVENT": "ClosedEvent",
    "MERGED_EVENT": "MergedEvent",
    "REOPENED_EVENT": "ReopenedEvent",
}


def _iso(moment: Any) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


class NotFound(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"type": "NOT_FOUND"})


class QueryRefused(Exception):
    """A query GitHub refuses before executing it (`type` is GitHub's error type)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _cursor(index: int) -> str:
    return base64.b64encode(f"cursor:{index}".encode()).decode()


def _index(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return int(base64.b64decode(cursor).decode().split(":")[1])
    except (ValueError, IndexError) as exc:
        raise GraphQLError(f"`{cursor}` does not appear to be a valid cursor.") from exc


def connection(
    items: list[Any],
    first: int | None = None,
    last: int | None = None,
    after: str | None = None,
    before: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Relay connection over `items` with index cursors."""
    start, end = (_index(after) or -1) + 1, len(items)
    if before is not None:
        end = min(end, _index(before) or 0)
    window = list(range(start, max(start, end)))
    if first is not None:
        window = window[:first]
    if last is not None:
        window = window[-last:] if last else []
    nodes = [items[i] for i in window]
    return {
        "nodes": nodes,
        "edges": [{"cursor": _cursor(i), "node": items[i]} for i in window],
        "totalCount": len(items),
        "pageInfo": {
            "startCursor": _cursor(window[0]) if window else None,
            "endCursor": _cursor(window[-1]) if window else None,
            "hasNextPage": bool(window) and window[-1] < end - 1,
            "hasPreviousPage": bool(window) and window[0] > start,
        },
        **extra,
    }


@dataclass
class Request:
    """One GraphQL request's context: the server, the measured cost, the PR states read."""

    server: FakeGitHub
    cost: int
    node_count: int
    states: dict[tuple[str, int], PullState] = field(default_factory=dict)

    def pull_state(self, repo: FakeRepo, pull: FakePull) -> PullState:
        key = (repo.full_name, pull.number)
        if key not in self.states:
            self.states[key] = repo.pull_state(pull)
        return self.states[key]


def actor(server: FakeGitHub, login: str | None) -> dict[str, Any] | None:
    if login is None:
        return None
    kind = "Bot" if login.endswith("[bot]") else "User"
    return {"typename": kind, "id": f"U_{login}", "login": login, "url": f"{server.url}/{login}"}


class CommitView:
    typename = "Commit"

    def __init__(self, req: Request, repo: FakeRepo, sha: str) -> None:
        self.req, self.repo, self.oid = req, repo, sha
        self.commit = repo.commits[sha]
        self.id = f"C_{sha}"
        self.abbreviatedOid = sha[:7]
        self.message = self.commit.message
        self.messageHeadline = self.commit.message.split("\n", 1)[0]
        self.committedDate = _iso(self.commit.date)
        self.url = f"{req.server.url}/{repo.full_name}/commit/{sha}"

    def statusCheckRollup(self, info: Any) -> dict[str, Any] | None:
        state = self.repo.rollup(self.oid)
        if state is None:
            return None
        contexts = self.repo.contexts(self.oid)

        def contexts_connection(info: Any, **args: Any) -> dict[str, Any]:
            views = [CONTEXT_VIEWS[c.typename](self.req, self.repo, c) for c in contexts]
            runs = sum(1 for v in views if v["typename"] == "CheckRun")
            return connection(
                views, **args, checkRunCount=runs, statusContextCount=len(views) - runs
            )

        return {
            "typename": "StatusCheckRollup",
            "id": f"SCR_{self.oid}",
            "state": state,
            "commit": self,
            "contexts": contexts_connection,
        }


def _check_run_view(req: Request, repo: FakeRepo, run: CheckRun) -> dict[str, Any]:
    url = f"{req.server.url}/{repo.full_name}/runs/{run.id}"
    return {
        "typename": "CheckRun",
        "id": f"CR_{run.id}",
        "databaseId": run.id,
        "name": run.name,
        "status": run.status.upper(),
        "conclusion": run.conclusion.upper() if run.conclusion else None,
        "startedAt": _iso(run.started_at),
        "completedAt": _iso(run.completed_at),
        "detailsUrl": url,
        "url": url,
        "isRequired": lambda info, **args: run.name in repo.required_checks,
    }


def _status_view(req: Request, repo: FakeRepo, status: CommitStatus) -> dict[str, Any]:
    return {
        "typename": "StatusContext",
        "id": f"SC_{status.id}",
        "context": status.context,
        "state": status.state.upper(),
        "description": status.description,
        "targetUrl": None,
        "createdAt": _iso(status.created_at),
        "isRequired": lambda info, **args: status.context in repo.required_checks,
    }


CONTEXT_VIEWS: dict[str, Callable[[Request, FakeRepo, Any], dict[str, Any]]] = {
    "CheckRun": _check_run_view,
    "StatusContext": _status_view,
}


class RepoView:
    typename = "Repository"

    def __init__(self, req: Request, repo: FakeRepo) -> None:
        self.req, self.repo = req, repo
        self.id = repo.node_id
        self.nameWithOwner = repo.full_name
        self.name = repo.full_name.split("/")[1]
        self.owner = {"login": repo.full_name.split("/")[0]}
        self.url = f"{req.server.url}/{repo.full_name}"

    def ref(self, info: Any, qualifiedName: str) -> dict[str, Any] | None:
        name = qualifiedName.removeprefix("refs/heads/")
        if name not in self.repo.branches:
            return None
        target = CommitView(self.req, self.repo, self.repo.branches[name])
        return {
            "typename": "Ref",
            "id": f"REF_{name}",
            "name": name,
            "prefix": "refs/heads/",
            "target": target,
        }

    def defaultBranchRef(self, info: Any) -> dict[str, Any] | None:
        return self.ref(info, self.repo.default_branch)

    def pullRequest(self, info: Any, number: int) -> PullView:
        pull = self.repo.pulls.get(number)
        if pull is None:
            raise NotFound(f"Could not resolve to a PullRequest with the number of {number}.")
        return PullView(self.req, self.repo, pull)

    def pullRequests(
        self, info: Any, states: list[str] | None = None, **args: Any
    ) -> dict[str, Any]:
        views = [PullView(self.req, self.repo, p) for p in self.repo.pulls.values()]
        return connection([v for v in views if not states or v.state in states], **args)


class PullView:
    typename = "PullRequest"

    def __init__(self, req: Request, repo: FakeRepo, pull: FakePull) -> None:
        self.req, self.repo, self.pull = req, repo, pull
        self.id = pull.node_id
        self.number, self.title, self.body = pull.number, pull.title, pull.body
        self.url = self.permalink = f"{req.server.url}/{repo.full_name}/pull/{pull.number}"
        self.merged, self.isDraft, self.closed = pull.merged, pull.draft, pull.state != "open"
        self.state = "MERGED" if pull.merged else pull.state.upper()
        self.headRefName, self.baseRefName = pull.head, pull.base
        self.createdAt, self.updatedAt = _iso(pull.created_at), _iso(pull.updated_at)
        self.mergedAt, self.closedAt = _iso(pull.merged_at), _iso(pull.closed_at)
        self.author = actor(req.server, pull.author)
        self.mergedBy = actor(req.server, pull.merged_by)

    @property
    def derived(self) -> PullState:
        return self.req.pull_state(self.repo, self.pull)

    def mergeable(self, info: Any) -> str:
        return self.derived.mergeable

    def mergeStateStatus(self, info: Any) -> str:
        return self.derived.merge_state

    def reviewDecision(self, info: Any) -> str | None:
        return self.derived.review_decision

    def headRefOid(self, info: Any) -> str:
        return self.repo.head_sha(self.pull)

    def baseRefOid(self, info: Any) -> str:
        return self.repo.base_sha(self.pull)

    def headRef(self, info: Any) -> dict[str, Any] | None:
        return RepoView(self.req, self.repo).ref(info, self.pull.head)

    def baseRef(self, info: Any) -> dict[str, Any] | None:
        return RepoView(self.req, self.repo).ref(info, self.pull.base)

    def mergeCommit(self, info: Any) -> CommitView | None:
        sha = self.pull.merge_commit_sha
        return CommitView(self.req, self.repo, sha) if sha else None

    def repository(self, info: Any) -> RepoView:
        return RepoView(self.req, self.repo)

    def commits(self, info: Any, **args: Any) -> dict[str, Any]:
        head, base = self.repo.head_sha(self.pull), self.repo.base_sha(self.pull)
        if self.pull.merged and self.pull.final_base_sha:
            base = self.pull.final_base_sha
        items = [
            {
                "typename": "PullRequestCommit",
                "id": f"PRC_{c.sha}",
                "commit": CommitView(self.req, self.repo, c.sha),
                "url": f"{self.url}/commits/{c.sha}",
            }
            for c in self.repo.only_in(head, base)
        ]
        return connection(items, **args)

    def reviews(self, info: Any, states: list[str] | None = None, **args: Any) -> dict[str, Any]:
        items = [
            {
                "typename": "PullRequestReview",
                "id": f"PRR_{r.id}",
                "author": actor(self.req.server, r.login),
                "state": r.state,
                "submittedAt": _iso(r.submitted_at),
                "commit": CommitView(self.req, self.repo, r.commit_id),
            }
            for r in self.pull.reviews
            if not states or r.state in states
        ]
        return connection(items, **args)

    def timelineItems(
        self,
        info: Any,
        itemTypes: list[str] | None = None,
        since: str | None = None,
        **args: Any,
    ) -> dict[str, Any]:
        kinds = {ITEM_TYPES[t] for t in itemTypes} if itemTypes else set(ITEM_TYPES.values())
        items = [
            self._event(index, e)
            for index, e in enumerate(self.pull.events)
            if e.kind in kinds and (since is None or (_iso(e.created_at) or "") >= since)
        ]
        return connection(items, **args)

    def _event(self, index: int, event: PullEvent) -> dict[str, Any]:
        item: dict[str, Any] = {
            "typename": event.kind,
            "id": f"EV_{self.pull.node_id}_{index}",
            "actor": actor(self.req.server, event.actor),
            "createdAt": _iso(event.created_at),
        }
        if event.kind == "MergedEvent":
            item["commit"] = self.mergeCommit(None)
            item["mergeRefName"] = self.pull.base
        return item


class Root:
    def __init__(self, req: Request) -> None:
        self.req = req
        self.server = req.server

    def rateLimit(self, info: Any) -> dict[str, Any]:
        server = self.server
        return {
            "cost": self.req.cost,
            "limit": server.graphql_limit,
            "nodeCount": self.req.node_count,
            "remaining": server.graphql_remaining,
            "resetAt": _iso(server.graphql_reset_at),
            "used": server.graphql_limit - server.graphql_remaining,
        }

    def viewer(self, info: Any) -> dict[str, Any] | None:
        return actor(self.server, self.server.login)

    def repository(self, info: Any, owner: str, name: str, **args: Any) -> RepoView:
        repo = self.server.repos.get(f"{owner}/{name}")
        if repo is None:
            raise NotFound(f"Could not resolve to a Repository with the name '{owner}/{name}'.")
        return RepoView(self.req, repo)

    def node(self, info: Any, id: str) -> Any:
        found = self.nodes(info, [id])[0]
        if isinstance(found, Exception):
            raise found
        return found

    def nodes(self, info: Any, ids: list[str]) -> list[Any]:
        found: list[Any] = []
        for node_id in ids:
            name, number = self.server.nodes.get(node_id, ("", -1))
            repo = self.server.repos.get(name)
            if repo is None or (number and number not in repo.pulls):
                message = f"Could not resolve to a node with the global id of '{node_id}'"
                found.append(NotFound(message))
            elif number == 0:
                found.append(RepoView(self.req, repo))
            else:
                found.append(PullView(self.req, repo, repo.pulls[number]))
        return found


def _type_of(value: Any, info: Any, abstract: Any) -> str:
    return value["typename"] if isinstance(value, dict) else value.typename


def measure(
    document: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> tuple[int, int]:
    """GitHub's requests (for the cost) and node count of one operation; raises
    `QueryRefused` for missing or excessive pagination and for more than 100 node ids."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    totals = [0, 0]

    def walk(selections: SelectionSetNode | None, parent: Any, multiplier: int) -> None:
        for selection in selections.selections if selections else ():
            if isinstance(selection, FragmentSpreadNode):
                fragment = fragments[selection.name.value]
                walk(
                    fragment.selection_set,
                    SCHEMA.get_type(fragment.type_condition.name.value),
                    multiplier,
                )
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = SCHEMA.get_type(condition.name.value) if condition else parent
                walk(selection.selection_set, target, multiplier)
            elif isinstance(selection, FieldNode):
                walk_field(selection, parent, multiplier)

    def walk_field(node: FieldNode, parent: Any, multiplier: int) -> None:
        name = node.name.value
        fields = getattr(parent, "fields", {})
        if name.startswith("__") or name not in fields:
            return
        target = get_named_type(fields[name].type)
        args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments}
        args = {k: v for k, v in args.items() if v is not None and v is not Undefined}
        if name == "nodes" and "ids" in args:
            ids = args["ids"] or []
            if len(ids) > MAX_LIMIT:
                raise QueryRefused(
                    "EXCESSIVE_PAGINATION",
                    f"You may not request more than {MAX_LIMIT} node IDs; "
                    f"you requested {len(ids)}.",
                )
            multiplier *= max(len(ids), 1)
        if isinstance(target, GraphQLObjectType) and target.name.endswith("Connection"):
            bound = "first" if "first" in args else "last"
            limit = args.get(bound)
            if limit is None:
                raise QueryRefused(
                    "MISSING_PAGINATION_BOUNDARIES",
                    "You must provide a `first` or `last` value to properly paginate the "
                    f"`{name}` connection.",
                )
            if not isinstance(limit, int):
                return
            if limit > MAX_LIMIT:
                raise QueryRefused(
                    "EXCESSIVE_PAGINATION",
                    f"Requesting {limit} records on the `{name}` connection exceeds the "
                    f"`{bound}` limit of {MAX_LIMIT} records.",
                )
            if limit < 1:
                raise QueryRefused(
                    "EXCESSIVE_PAGINATION",
                    f"`{bound}` on the `{name}` connection must be between 1 and {MAX_LIMIT}.",
                )
            totals[0] += multiplier
            multiplier *= limit
            totals[1] += multiplier
        walk(node.selection_set, target, multiplier)

    walk(operation.selection_set, SCHEMA.query_type, 1)
    if totals[1] > MAX_NODES:
        raise QueryRefused(
            "MAX_NODE_LIMIT_EXCEEDED",
            f"This query requests up to {totals[1]:,} possible nodes which exceeds the maximum "
            f"limit of {MAX_NODES:,}.",
        )
    return totals[0], totals[1]


def _format(error: GraphQLError) -> dict[str, Any]:
    data = dict(error.formatted)
    extensions = dict(data.pop("extensions", None) or {})
    if "type" in extensions:
        data["type"] = extensions.pop("type")
    if extensions:
        data["extensions"] = extensions
    return data


class GraphQLApi:
    """Answers `POST /graphql` bodies for one `FakeGitHub` (called under the server's lock)."""

    def __init__(self, server: FakeGitHub) -> None:
        self.server = server
        self._documents: dict[str, DocumentNode | list[dict[str, Any]]] = {}

    def _document(self, query: str) -> DocumentNode | list[dict[str, Any]]:
        if query not in self._documents:
            if len(self._documents) > 256:
                self._documents.clear()
            try:
                document = parse(query)
            except GraphQLError as exc:
                self._documents[query] = [_format(exc)]
            else:
                errors = validate(SCHEMA, document)
                self._documents[query] = [_format(e) for e in errors] if errors else document
        return self._documents[query]

    def _headers(self) -> dict[str, str]:
        server = self.server
        return {
            "x-ratelimit-limit": str(server.graphql_limit),
            "x-ratelimit-remaining": str(server.graphql_remaining),
            "x-ratelimit-used": str(server.graphql_limit - server.graphql_remaining),
            "x-ratelimit-reset": str(int(server.graphql_reset_at.timestamp())),
            "x-ratelimit-resource": "graphql",
        }

    def execute(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        server = self.server
        query, variables = body.get("query"), body.get("variables") or {}
        if not isinstance(query, str):
            message = "A query attribute must be specified and must be a string."
            return 200, {"errors": [{"message": message}]}, self._headers()
        document = self._document(query)
        if isinstance(document, list):
            return 200, {"errors": document}, self._headers()
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        wanted = body.get("operationName")
        chosen = [o for o in operations if not wanted or (o.name and o.name.value == wanted)]
        if len(chosen) != 1:
            message = "An operation name is required" if len(chosen) > 1 else "Unknown operation"
            return 200, {"errors": [{"message": message}]}, self._headers()
        try:
            requests, node_count = measure(document, chosen[0], variables)
        except QueryRefused as refused:
            return (
                200,
                {"errors": [{"type": refused.kind, "message": str(refused)}]},
                self._headers(),
            )
        cost = max(1, math.floor(requests / 100 + 0.5))
        now = server.now()
        if now >= server.graphql_reset_at:
            server.graphql_remaining = server.graphql_limit
            server.graphql_reset_at = now + timedelta(hours=1)
        if cost > server.graphql_remaining:
            error = {
                "type": "RATE_LIMITED",
                "code": "graphql_rate_limit",
                "message": "API rate limit already exceeded for user ID 1.",
            }
            return 200, {"errors": [error]}, self._headers()
        server.graphql_remaining -= cost
        server.graphql_costs.append(cost)
        req = Request(server, cost, node_count)
        result = execute(
            SCHEMA,
            document,
            root_value=Root(req),
            variable_values=variables,
            operation_name=wanted,
            type_resolver=_type_of,
        )
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [_format(e) for e in result.errors]
        return 200, answer, self._headers()

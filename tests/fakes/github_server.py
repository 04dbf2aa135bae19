"""An in-memory GitHub on 127.0.0.1: the REST shapes PyGithub uses, and GraphQL at `/graphql`.

Repositories hold branches (name → commit sha), a commit graph (each commit keeps its parents
and its whole file tree), pull requests with reviews, and check runs and commit statuses per
commit. The real PyGithub client talks to it through `GitHubResource(api_url=server.url)`;
GraphQL (`tests/fakes/github_graphql.py`) answers `POST {server.url}/graphql` over the same state.

A pull request's mergeability is derived the way GitHub derives it, on every read:
`DIRTY` when base and head changed the same file differently since their merge base (a real
three-way comparison of the trees), `DRAFT` for drafts, `BEHIND` when the repository requires
up-to-date branches (`strict`) and the base tip is not in the head, `BLOCKED` when required
reviews are missing or changes were requested or a required check is not passing, `UNSTABLE`
when any check or status is not passing (pending included), `CLEAN` otherwise.
`mergeability_unknown` makes the next reads answer `UNKNOWN`, as GitHub does while it computes.
Closed and merged pull requests read `UNKNOWN` (REST `mergeable: null`).

Faults can be injected per request (`fail`, `secondary_limit`), before the request is served
or after it changed the state (a lost answer), to exercise retries.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.github_graphql import GraphQLApi
from tests.fakes.local_server import LocalServer, Reply

Answer = tuple[int, Any]
Files = dict[str, bytes]
NOT_FOUND: Answer = (404, {"message": "Not Found"})
NOT_MERGEABLE = "Pull Request is not mergeable"
HEAD_MODIFIED = "Head branch was modified. Review and try the merge again."
SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID 0000:FAKE."
)
MERGE_METHODS = ("merge", "squash", "rebase")
CHECK_PASSING = frozenset({"success", "neutral", "skipped"})
CHECK_FAILING = frozenset(
    {"failure", "timed_out", "cancelled", "action_required", "stale", "startup_failure"}
)


def _sha(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _tree_sha(files: Mapping[str, bytes]) -> str:
    return _sha("tree", sorted((path, _blob_sha(content)) for path, content in files.items()))


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _encode(files: Mapping[str, str | bytes | None]) -> dict[str, bytes | None]:
    return {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}


def three_way(ancestor: Files, ours: Files, theirs: Files) -> tuple[Files, list[str]]:
    """Git's file-level three-way merge: the merged tree and the paths both sides changed
    differently (those keep `ours`)."""
    merged: Files = {}
    conflicts: list[str] = []
    for path in sorted(ancestor.keys() | ours.keys() | theirs.keys()):
        old, mine, other = ancestor.get(path), ours.get(path), theirs.get(path)
        if mine == other or other == old:
            result = mine
        elif mine == old:
            result = other
        else:
            conflicts.append(path)
            result = mine
        if result is not None:
            merged[path] = result
    return merged, conflicts


@dataclass
class FakeCommit:
    sha: str
    parents: tuple[str, ...]
    files: Files
    message: str
    date: datetime
    generation: int


@dataclass
class CheckRun:
    typename: ClassVar[str] = "CheckRun"
    id: int
    name: str
    status: str
    conclusion: str | None
    started_at: datetime
    completed_at: datetime | None

    @property
    def label(self) -> str:
        return self.name

    @property
    def outcome(self) -> str:
        """passing / failing / pending, by the merge-policy rules."""
        if self.status != "completed" or self.conclusion is None:
            return "pending"
        if self.conclusion in CHECK_PASSING:
            return "passing"
        return "failing" if self.conclusion in CHECK_FAILING else "pending"


@dataclass
class CommitStatus:
    typename: ClassVar[str] = "StatusContext"
    id: int
    context: str
    state: str
    description: str
    created_at: datetime

    @property
    def label(self) -> str:
        return self.context

    @property
    def outcome(self) -> str:
        return {"success": "passing", "pending": "pending"}.get(self.state, "failing")


@dataclass
class Review:
    id: int
    login: str
    state: str
    commit_id: str
    submitted_at: datetime


@dataclass
class PullEvent:
    kind: str
    actor: str
    created_at: datetime


@dataclass
class FakePull:
    """One pull request; `pull["head"]` reads attributes too (the older dict shape)."""

    number: int
    title: str
    body: str
    head: str
    base: str
    author: str
    node_id: str
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    draft: bool = False
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    final_head_sha: str | None = None
    final_base_sha: str | None = None
    reviews: list[Review] = field(default_factory=list)
    events: list[PullEvent] = field(default_factory=list)
    unknown_reads: int = 0

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass(frozen=True)
class PullState:
    """What GitHub derives for a pull request at one read."""

    mergeable: str
    merge_state: str
    review_decision: str | None
    rollup: str | None
    conflicts: tuple[str, ...]
    behind: bool


@dataclass
class FakeRepo:
    full_name: str
    default_branch: str = "main"
    reviews_required: bool = False
    strict: bool = False
    required_checks: tuple[str, ...] = ()
    dismiss_stale_reviews: bool = False
    clock: Callable[[], datetime] = utcnow
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, FakeCommit] = field(default_factory=dict)
    pulls: dict[int, FakePull] = field(default_factory=dict)
    checks: dict[str, list[CheckRun]] = field(default_factory=dict)
    statuses: dict[str, list[CommitStatus]] = field(default_factory=dict)
    trees: dict[str, Files] = field(default_factory=dict)
    next_number: int = 1
    _ancestors: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _merges: dict[tuple[str, str], tuple[Files, list[str]]] = field(
        default_factory=dict, repr=False
    )

    @property
    def node_id(self) -> str:
        return "R_kgDO" + hashlib.sha1(self.full_name.encode()).hexdigest()[:10]

    def files(self, branch: str) -> Files:
        return self.commits[self.branches[branch]].files

    def commit(
        self,
        branch: str,
        files: Files,
        message: str = "",
        parents: tuple[str, ...] | None = None,
    ) -> str:
        """A new commit holding exactly `files` at the tip of `branch` (created if missing);
        its parent is the branch's tip unless `parents` are given."""
        if parents is None:
            parents = (self.branches[branch],) if branch in self.branches else ()
        sha = _sha(self.full_name, parents, sorted(files.items()), message, len(self.commits))
        generation = 1 + max((self.commits[p].generation for p in parents), default=-1)
        self.commits[sha] = FakeCommit(sha, parents, dict(files), message, self.clock(), generation)
        self.branches[branch] = sha
        for pull in self.pulls.values():
            if pull.state == "open" and pull.head == branch:
                pull.updated_at = self.clock()
        return sha

    def resolve(self, ref: str) -> str | None:
        """The commit sha a branch name, `refs/heads/…`, `owner:branch`, sha or prefix names."""
        name = ref.removeprefix("refs/heads/").split(":")[-1]
        if name in self.branches:
            return self.branches[name]
        if name in self.commits:
            return name
        if len(name) >= 7:
            return next((s for s in self.commits if s.startswith(name)), None)
        return None

    def ancestors(self, sha: str) -> frozenset[str]:
        """`sha` and every commit reachable from it (cached: commits never change)."""
        stack = [sha]
        while stack:
            top = stack[-1]
            if top in self._ancestors:
                stack.pop()
                continue
            parents = self.commits[top].parents
            missing = [p for p in parents if p not in self._ancestors]
            if missing:
                stack.extend(missing)
                continue
            reach = {top}
            for parent in parents:
                reach |= self._ancestors[parent]
            self._ancestors[top] = frozenset(reach)
            stack.pop()
        return self._ancestors[sha]

    def contains(self, branch: str, sha: str) -> bool:
        """True when commit `sha` is on `branch` (reachable from its tip)."""
        return branch in self.branches and sha in self.ancestors(self.branches[branch])

    def merge_base(self, a: str, b: str) -> str | None:
        common = self.ancestors(a) & self.ancestors(b)
        return max(common, key=lambda s: (self.commits[s].generation, s)) if common else None

    def only_in(self, head: str, base: str) -> list[FakeCommit]:
        """Commits reachable from `head` and not from `base`, oldest first."""
        shas = self.ancestors(head) - self.ancestors(base)
        return sorted((self.commits[s] for s in shas), key=lambda c: (c.generation, c.date))

    def merged_files(self, base: str, head: str) -> tuple[Files, list[str]]:
        """Head merged onto base: the tree and the conflicting paths (cached per pair)."""
        key = (base, head)
        if key not in self._merges:
            mb = self.merge_base(base, head)
            ancestor = self.commits[mb].files if mb else {}
            self._merges[key] = three_way(
                ancestor, self.commits[base].files, self.commits[head].files
            )
        return self._merges[key]

    def head_sha(self, pull: FakePull) -> str:
        return pull.final_head_sha or self.branches[pull.head]

    def base_sha(self, pull: FakePull) -> str:
        return pull.final_base_sha or self.branches[pull.base]

    def contexts(self, sha: str) -> list[CheckRun | CommitStatus]:
        """The latest check run per name, then the latest status per context, of one commit."""
        runs = {run.name: run for run in self.checks.get(sha, [])}
        statuses = {status.context: status for status in self.statuses.get(sha, [])}
        return [*runs.values(), *statuses.values()]

    def rollup(self, sha: str) -> str | None:
        """GraphQL `statusCheckRollup.state` (None when the commit has no checks)."""
        contexts = self.contexts(sha)
        if not contexts:
            return None
        outcomes = {c.outcome for c in contexts}
        if "failing" in outcomes:
            errored = any(isinstance(c, CommitStatus) and c.state == "error" for c in contexts)
            return "ERROR" if errored else "FAILURE"
        return "PENDING" if "pending" in outcomes else "SUCCESS"

    def review_decision(self, pull: FakePull) -> str | None:
        if not self.reviews_required:
            return None
        head = self.head_sha(pull)
        latest: dict[str, str] = {}
        for review in pull.reviews:
            stale = self.dismiss_stale_reviews and review.commit_id != head
            if review.state in ("APPROVED", "CHANGES_REQUESTED") and not stale:
                latest[review.login] = review.state
        if "CHANGES_REQUESTED" in latest.values():
            return "CHANGES_REQUESTED"
        return "APPROVED" if "APPROVED" in latest.values() else "REVIEW_REQUIRED"

    def required_checks_pass(self, sha: str) -> bool:
        outcomes = {c.label: c.outcome for c in self.contexts(sha)}
        return all(outcomes.get(name) == "passing" for name in self.required_checks)

    def pull_state(self, pull: FakePull, count_read: bool = True) -> PullState:
        """Derive mergeability; a counted read spends one of `mergeability_unknown`'s reads."""
        head = self.head_sha(pull)
        decision, rollup = self.review_decision(pull), self.rollup(head)
        if pull.state != "open" or (count_read and pull.unknown_reads > 0):
            if pull.state == "open":
                pull.unknown_reads -= 1
            return PullState("UNKNOWN", "UNKNOWN", decision, rollup, (), False)
        base = self.branches[pull.base]
        conflicts = tuple(self.merged_files(base, head)[1])
        behind = base not in self.ancestors(head)
        if conflicts:
            status = "DIRTY"
        elif pull.draft:
            status = "DRAFT"
        elif self.strict and behind:
            status = "BEHIND"
        elif decision in ("REVIEW_REQUIRED", "CHANGES_REQUESTED") or not self.required_checks_pass(
            head
        ):
            status = "BLOCKED"
        elif rollup not in (None, "SUCCESS"):
            status = "UNSTABLE"
        else:
            status = "CLEAN"
        mergeable = "CONFLICTING" if conflicts else "MERGEABLE"
        return PullState(mergeable, status, decision, rollup, conflicts, behind)


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    times: int
    after: bool
    headers: dict[str, str] = field(default_factory=dict)


class FakeGitHub(LocalServer):
    """GitHub REST (repos, git data, commits, compare, contents, pulls, merge, update-branch,
    check runs and statuses) and GraphQL over one in-memory state; accepts one token."""

    def __init__(self, token: str = "fake-github-token", *, login: str = "juggernaut-bot") -> None:
        super().__init__()
        self.token = token
        self.login = login
        self.now: Callable[[], datetime] = utcnow
        self.repos: dict[str, FakeRepo] = {}
        self.nodes: dict[str, tuple[str, int]] = {}
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, str, Any]] = []
        self.faults: list[Fault] = []
        self.graphql_count = 0
        self.graphql_limit = 5000
        self.graphql_remaining = 5000
        self.graphql_reset_at = self.now() + timedelta(hours=1)
        self.graphql_costs: list[int] = []
        self._ids = 0
        self._lock = threading.RLock()
        self._graphql = GraphQLApi(self)

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        status, data, extra = self.handle(method, path, payload, headers.get("Authorization", ""))
        return Reply(status, data, {"Content-Type": "application/json; charset=utf-8", **extra})

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def repo(self, full_name: str) -> FakeRepo:
        return self.repos[full_name]

    def pull(self, repo: str, number: int) -> FakePull:
        return self.repos[repo].pulls[number]

    def head_sha(self, repo: str, number: int) -> str:
        """The pull request's head commit (its branch tip while open)."""
        return self.repos[repo].head_sha(self.pull(repo, number))

    def state(self, repo: str, number: int) -> PullState:
        """The derived state now, without spending a `mergeability_unknown` read."""
        with self._lock:
            return self.repos[repo].pull_state(self.pull(repo, number), count_read=False)

    def contains(self, repo: str, branch: str, sha: str) -> bool:
        """True when commit `sha` is on `branch` of `repo`."""
        with self._lock:
            return self.repos[repo].contains(branch, sha)

    def add_repo(
        self,
        full_name: str,
        files: dict[str, str] | None = None,
        *,
        reviews_required: bool = False,
        strict: bool = False,
        required_checks: Iterable[str] = (),
        dismiss_stale_reviews: bool = False,
        default_branch: str = "main",
    ) -> FakeRepo:
        """A repository whose default branch holds `files`; branch protection as given."""
        repo = FakeRepo(
            full_name,
            default_branch=default_branch,
            reviews_required=reviews_required,
            strict=strict,
            required_checks=tuple(required_checks),
            dismiss_stale_reviews=dismiss_stale_reviews,
            clock=lambda: self.now(),
        )
        repo.commit(default_branch, {p: c.encode() for p, c in (files or {}).items()}, "Initial")
        with self._lock:
            self.repos[full_name] = repo
            self.nodes[repo.node_id] = (full_name, 0)
        return repo

    def push(
        self, repo: str, branch: str, files: Mapping[str, str | bytes | None], message: str = "push"
    ) -> str:
        """A new commit on `branch` (created from the default branch if missing) changing
        `files` (None deletes a path); its sha."""
        with self._lock:
            fake = self.repos[repo]
            start = fake.branches.get(branch, fake.branches[fake.default_branch])
            tree = dict(fake.commits[start].files)
            for path, content in _encode(files).items():
                if content is None:
                    tree.pop(path, None)
                else:
                    tree[path] = content
            return fake.commit(branch, tree, message, parents=(start,))

    def advance_base(self, repo: str, files: Mapping[str, str | bytes | None]) -> str:
        """Someone pushes to the default branch: open pull requests fall behind."""
        return self.push(repo, self.repos[repo].default_branch, files, "advance base")

    def open_pull(
        self,
        repo: str,
        branch: str,
        files: Mapping[str, str | bytes | None],
        *,
        title: str = "",
        body: str = "",
        base: str | None = None,
        draft: bool = False,
        author: str | None = None,
    ) -> FakePull:
        """Branch from `base` (default branch), commit `files` on it and open a pull request."""
        with self._lock:
            fake = self.repos[repo]
            base = base or fake.default_branch
            if branch not in fake.branches:
                fake.branches[branch] = fake.branches[base]
            self.push(repo, branch, files, title or f"change {branch}")
            return self._new_pull(fake, branch, base, title or branch, body, draft, author)

    def _new_pull(
        self,
        repo: FakeRepo,
        head: str,
        base: str,
        title: str,
        body: str,
        draft: bool,
        author: str | None,
    ) -> FakePull:
        number, repo.next_number = repo.next_number, repo.next_number + 1
        node_id = "PR_kwDO" + hashlib.sha1(f"{repo.full_name}#{number}".encode()).hexdigest()[:12]
        now = self.now()
        pull = FakePull(number, title, body, head, base, author or self.login, node_id, now, now)
        pull.draft = draft
        repo.pulls[number] = pull
        self.nodes[node_id] = (repo.full_name, number)
        return pull

    def _review(self, repo: str, number: int, login: str, state: str) -> None:
        with self._lock:
            fake, pull = self.repos[repo], self.pull(repo, number)
            now = self.now()
            pull.reviews.append(Review(self._id(), login, state, fake.head_sha(pull), now))
            pull.updated_at = now

    def approve(self, repo: str, number: int, login: str) -> None:
        """`login` approves the pull request at its current head."""
        self._review(repo, number, login, "APPROVED")

    def request_changes(self, repo: str, number: int, login: str) -> None:
        """`login` requests changes on the pull request at its current head."""
        self._review(repo, number, login, "CHANGES_REQUESTED")

    def add_check(
        self,
        repo: str,
        sha: str,
        name: str,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> int:
        """A check run on commit `sha` (or a branch's tip); a later run of the same name
        replaces it. `conclusion` is dropped unless `status` is "completed". Its id."""
        with self._lock:
            fake = self.repos[repo]
            commit = fake.resolve(sha) or sha
            now = self.now()
            done = status == "completed"
            run = CheckRun(
                self._id(), name, status, conclusion if done else None, now, now if done else None
            )
            fake.checks.setdefault(commit, []).append(run)
            return run.id

    def add_status(
        self, repo: str, sha: str, context: str, state: str, description: str = ""
    ) -> None:
        """A commit status (`success` / `failure` / `error` / `pending`) on `sha`."""
        with self._lock:
            fake = self.repos[repo]
            commit = fake.resolve(sha) or sha
            status = CommitStatus(self._id(), context, state, description, self.now())
            fake.statuses.setdefault(commit, []).append(status)

    def set_draft(self, repo: str, number: int, draft: bool) -> None:
        with self._lock:
            self.pull(repo, number).draft = draft

    def mergeability_unknown(self, repo: str, number: int, reads: int = 1) -> None:
        """The next `reads` reads of the pull request (REST or GraphQL) answer UNKNOWN."""
        with self._lock:
            self.pull(repo, number).unknown_reads = reads

    def merge_externally(self, repo: str, number: int, login: str, method: str = "merge") -> str:
        """Someone merges in the UI (no checks enforced; conflicts still refuse). The merge
        commit's sha."""
        with self._lock:
            fake, pull = self.repos[repo], self.pull(repo, number)
            if pull.state != "open" or fake.pull_state(pull, count_read=False).conflicts:
                raise ValueError(f"{repo}#{number} cannot be merged")
            return self._merge(fake, pull, method, login, None, None)

    def close(self, repo: str, number: int, login: str) -> None:
        """`login` closes the pull request without merging it."""
        with self._lock:
            fake, pull = self.repos[repo], self.pull(repo, number)
            self._close(fake, pull, login)

    def reopen(self, repo: str, number: int, login: str) -> None:
        with self._lock:
            pull, now = self.pull(repo, number), self.now()
            pull.state, pull.closed_at, pull.closed_by = "open", None, None
            pull.final_head_sha = pull.final_base_sha = None
            pull.updated_at = now
            pull.events.append(PullEvent("ReopenedEvent", login, now))

    def _close(self, repo: FakeRepo, pull: FakePull, login: str) -> None:
        now = self.now()
        pull.final_head_sha, pull.final_base_sha = repo.head_sha(pull), repo.base_sha(pull)
        pull.state, pull.closed_at, pull.closed_by, pull.updated_at = "closed", now, login, now
        pull.events.append(PullEvent("ClosedEvent", login, now))

    def _merge(
        self,
        repo: FakeRepo,
        pull: FakePull,
        method: str,
        login: str,
        title: str | None,
        message: str | None,
    ) -> str:
        base, head = repo.branches[pull.base], repo.head_sha(pull)
        files, _ = repo.merged_files(base, head)
        owner = repo.full_name.split("/")[0]
        if method == "merge":
            text = title or f"Merge pull request #{pull.number} from {owner}/{pull.head}"
            sha = repo.commit(pull.base, files, f"{text}\n\n{message or pull.title}", (base, head))
        elif method == "squash":
            text = title or f"{pull.title} (#{pull.number})"
            sha = repo.commit(pull.base, files, f"{text}\n\n{message or ''}".strip(), (base,))
        else:
            replay = [c for c in repo.only_in(head, base) if len(c.parents) < 2]
            replay = replay or [repo.commits[head]]
            tree = dict(repo.commits[base].files)
            sha = base
            for index, change in enumerate(replay):
                if index == len(replay) - 1:
                    tree = files
                else:
                    old = repo.commits[change.parents[0]].files if change.parents else {}
                    tree, _ = three_way(old, tree, change.files)
                sha = repo.commit(pull.base, tree, change.message, (sha,))
        self._close(repo, pull, login)
        pull.final_base_sha = base
        pull.merged, pull.merged_at, pull.merged_by = True, pull.closed_at, login
        pull.merge_commit_sha = sha
        pull.events.insert(-1, PullEvent("MergedEvent", login, pull.closed_at or self.now()))
        return sha

    def fail(
        self,
        method: str,
        path_pattern: str,
        status: int,
        message: str = "Server Error",
        *,
        times: int = 1,
        after: bool = False,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status`, `{"message": message}`
        (or `body`) and `headers`; with `after`, serve them first (the change happens, the
        answer is lost)."""
        answer = {"message": message} if body is None else body
        fault = Fault(method, re.compile(path_pattern), status, answer, times, after, headers or {})
        with self._lock:
            self.faults.append(fault)

    def secondary_limit(
        self,
        method: str,
        path_pattern: str,
        *,
        retry_after: int = 60,
        status: int = 403,
        times: int = 1,
    ) -> None:
        """GitHub's secondary rate limit for the next `times` matching requests: `status`
        (403 or 429) with `Retry-After` and GitHub's message."""
        body = {
            "message": SECONDARY_LIMIT,
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        }
        headers = {"Retry-After": str(retry_after)}
        self.fail(method, path_pattern, status, body=body, times=times, headers=headers)

    def count(self, method: str, path_pattern: str) -> int:
        return sum(1 for m, p in self.requests if m == method and re.search(path_pattern, p))

    def _fault(self, method: str, path: str, after: bool) -> tuple[int, Any, dict[str, str]] | None:
        for fault in self.faults:
            matches = fault.method == method and fault.path.search(path)
            if fault.times and fault.after is after and matches:
                fault.times -= 1
                return fault.status, fault.body, fault.headers
        return None

    def _authorized(self, auth: str) -> bool:
        scheme, _, value = auth.partition(" ")
        return scheme.lower() in ("token", "bearer") and value == self.token

    def handle(
        self, method: str, raw_path: str, body: Any, auth: str
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append((method, path))
            self.bodies.append((method, path, body))
            if path == "/graphql":
                self.graphql_count += 1
            if not self._authorized(auth):
                return 401, {"message": "Bad credentials"}, {}
            before = self._fault(method, path, after=False)
            if before:
                return before
            if body is None:
                return 400, {"message": "Problems parsing JSON"}, {}
            if path == "/graphql" and method == "POST":
                answer = self._graphql.execute(body)
            else:
                answer = (*self._route(method, path, query, body), {})
            return self._fault(method, path, after=True) or answer

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not match or match.group(1) not in self.repos:
            return NOT_FOUND
        repo, rest = self.repos[match.group(1)], match.group(2) or ""

        def on_pull(action: Callable[[FakePull], Answer]) -> Callable[[re.Match[str]], Answer]:
            def run(m: re.Match[str]) -> Answer:
                pull = repo.pulls.get(int(m[1]))
                return action(pull) if pull else NOT_FOUND

            return run

        routes: list[tuple[str, str, Callable[[re.Match[str]], Answer]]] = [
            ("GET", r"", lambda m: (200, self._repo_json(repo))),
            ("GET", r"/branches/(.+)", lambda m: self._get_branch(repo, unquote(m[1]))),
            ("GET", r"/git/ref/heads/(.+)", lambda m: self._get_ref(repo, unquote(m[1]))),
            ("POST", r"/git/refs", lambda m: self._create_ref(repo, body)),
            ("GET", r"/git/commits/([^/]+)", lambda m: self._get_git_commit(repo, m[1])),
            ("GET", r"/git/trees/(.+)", lambda m: self._get_tree(repo, unquote(m[1]), query)),
            ("GET", r"/commits/(.+)/check-runs", lambda m: self._check_runs(repo, unquote(m[1]))),
            ("GET", r"/commits/(.+)/status", lambda m: self._combined(repo, unquote(m[1]))),
            ("GET", r"/commits/(.+)", lambda m: self._get_commit(repo, unquote(m[1]))),
            ("GET", r"/compare/(.+)", lambda m: self._compare(repo, unquote(m[1]))),
            ("GET", r"/contents/(.+)", lambda m: self._get_file(repo, unquote(m[1]), query)),
            ("PUT", r"/contents/(.+)", lambda m: self._put_file(repo, unquote(m[1]), body)),
            ("GET", r"/pulls", lambda m: (200, self._list_pulls(repo, query))),
            ("POST", r"/pulls", lambda m: self._create_pull(repo, body)),
            ("GET", r"/pulls/(\d+)", on_pull(lambda p: (200, self._pull_json(repo, p)))),
            ("PATCH", r"/pulls/(\d+)", on_pull(lambda p: self._edit_pull(repo, p, body))),
            (
                "GET",
                r"/pulls/(\d+)/merge",
                on_pull(lambda p: (204, b"") if p.merged else NOT_FOUND),
            ),
            ("PUT", r"/pulls/(\d+)/merge", on_pull(lambda p: self._merge_pull(repo, p, body))),
            ("PUT", r"/pulls/(\d+)/update-branch", on_pull(lambda p: self._update(repo, p, body))),
            ("GET", r"/pulls/(\d+)/reviews", on_pull(lambda p: (200, self._reviews(repo, p)))),
        ]
        for verb, pattern, action in routes:
            found = re.fullmatch(pattern, rest)
            if verb == method and found:
                return action(found)
        return NOT_FOUND

    def _repo_url(self, repo: FakeRepo) -> str:
        return f"{self.url}/repos/{repo.full_name}"

    def user_json(self, login: str | None) -> dict[str, Any] | None:
        if login is None:
            return None
        return {
            "login": login,
            "id": int(hashlib.sha1(login.encode()).hexdigest()[:7], 16),
            "node_id": f"U_{login}",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "url": f"{self.url}/users/{login}",
            "html_url": f"{self.url}/{login}",
        }

    def _repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        owner, name = repo.full_name.split("/")
        return {
            "id": int(repo.node_id[6:], 16) % 10**8,
            "node_id": repo.node_id,
            "name": name,
            "full_name": repo.full_name,
            "owner": {"login": owner, "id": 1, "type": "User", "url": f"{self.url}/users/{owner}"},
            "private": False,
            "html_url": f"{self.url}/{repo.full_name}",
            "url": self._repo_url(repo),
            "default_branch": repo.default_branch,
        }

    def _ref_json(self, repo: FakeRepo, branch: str) -> dict[str, Any]:
        sha = repo.branches[branch]
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": _sha("ref", repo.full_name, branch),
            "url": f"{self._repo_url(repo)}/git/refs/heads/{branch}",
            "object": {
                "sha": sha,
                "type": "commit",
                "url": f"{self._repo_url(repo)}/git/commits/{sha}",
            },
        }

    def _get_ref(self, repo: FakeRepo, branch: str) -> Answer:
        if branch not in repo.branches:
            return NOT_FOUND
        return 200, self._ref_json(repo, branch)

    def _create_ref(self, repo: FakeRepo, body: dict[str, Any]) -> Answer:
        branch = str(body.get("ref", "")).removeprefix("refs/heads/")
        if branch in repo.branches:
            return 422, {"message": "Reference already exists"}
        if body.get("sha") not in repo.commits:
            return 422, {"message": "Object does not exist"}
        repo.branches[branch] = body["sha"]
        return 201, self._ref_json(repo, branch)

    def _get_branch(self, repo: FakeRepo, branch: str) -> Answer:
        if branch not in repo.branches:
            return 404, {"message": "Branch not found"}
        protected = branch == repo.default_branch and bool(
            repo.reviews_required or repo.strict or repo.required_checks
        )
        url = f"{self._repo_url(repo)}/branches/{branch}"
        return 200, {
            "name": branch,
            "commit": self._commit_json(repo, repo.branches[branch]),
            "protected": protected,
            "protection": {
                "enabled": protected,
                "required_status_checks": {
                    "enforcement_level": "non_admins" if repo.required_checks else "off",
                    "contexts": list(repo.required_checks),
                    "strict": repo.strict,
                },
            },
            "protection_url": f"{url}/protection",
            "_links": {"self": url, "html": f"{self.url}/{repo.full_name}/tree/{branch}"},
        }

    def _git_commit_json(self, repo: FakeRepo, sha: str) -> dict[str, Any]:
        commit, api = repo.commits[sha], self._repo_url(repo)
        tree = _tree_sha(commit.files)
        repo.trees[tree] = commit.files
        person = {"name": "Fake", "email": "fake@example.invalid", "date": iso(commit.date)}
        return {
            "sha": sha,
            "url": f"{api}/git/commits/{sha}",
            "message": commit.message,
            "author": person,
            "committer": person,
            "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
            "parents": [{"sha": p, "url": f"{api}/git/commits/{p}"} for p in commit.parents],
        }

    def _commit_json(self, repo: FakeRepo, sha: str, with_files: bool = False) -> dict[str, Any]:
        commit, api, html = repo.commits[sha], self._repo_url(repo), f"{self.url}/{repo.full_name}"
        data: dict[str, Any] = {
            "sha": sha,
            "node_id": f"C_{sha}",
            "url": f"{api}/commits/{sha}",
            "html_url": f"{html}/commit/{sha}",
            "commit": {**self._git_commit_json(repo, sha), "comment_count": 0},
            "author": None,
            "committer": None,
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                for p in commit.parents
            ],
        }
        if with_files:
            old = repo.commits[commit.parents[0]].files if commit.parents else {}
            data["files"] = self._file_changes(repo, old, commit.files, sha)
            adds = sum(f["additions"] for f in data["files"])
            dels = sum(f["deletions"] for f in data["files"])
            data["stats"] = {"additions": adds, "deletions": dels, "total": adds + dels}
        return data

    def _file_changes(
        self, repo: FakeRepo, old: Files, new: Files, ref: str
    ) -> list[dict[str, Any]]:
        changes = []
        for path in sorted(old.keys() | new.keys()):
            before, after = old.get(path), new.get(path)
            if before == after:
                continue
            status = "added" if before is None else "removed" if after is None else "modified"
            diff = list(
                difflib.unified_diff(
                    (before or b"").decode(errors="replace").splitlines(),
                    (after or b"").decode(errors="replace").splitlines(),
                    lineterm="",
                    n=1,
                )
            )[2:]
            adds = sum(1 for line in diff if line.startswith("+"))
            dels = sum(1 for line in diff if line.startswith("-"))
            changes.append(
                {
                    "sha": _blob_sha(after if after is not None else before or b""),
                    "filename": path,
                    "status": status,
                    "additions": adds,
                    "deletions": dels,
                    "changes": adds + dels,
                    "patch": "\n".join(diff),
                    "blob_url": f"{self.url}/{repo.full_name}/blob/{ref}/{path}",
                    "raw_url": f"{self.url}/{repo.full_name}/raw/{ref}/{path}",
                    "contents_url": f"{self._repo_url(repo)}/contents/{path}?ref={ref}",
                }
            )
        return changes

    def _get_commit(self, repo: FakeRepo, ref: str) -> Answer:
        sha = repo.resolve(ref)
        if sha is None:
            return 422, {"message": f"No commit found for SHA: {ref}"}
        return 200, self._commit_json(repo, sha, with_files=True)

    def _get_git_commit(self, repo: FakeRepo, sha: str) -> Answer:
        if sha not in repo.commits:
            return NOT_FOUND
        return 200, self._git_commit_json(repo, sha)

    def _get_tree(self, repo: FakeRepo, ref: str, query: dict[str, str]) -> Answer:
        sha = repo.resolve(ref)
        files = repo.commits[sha].files if sha else repo.trees.get(ref)
        if files is None:
            return NOT_FOUND
        recursive = query.get("recursive") not in (None, "", "0", "false")
        api = self._repo_url(repo)
        entries: dict[str, dict[str, Any]] = {}
        for path in sorted(files):
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in entries and (recursive or depth == 1):
                    prefix = folder + "/"
                    sub = {p[len(prefix) :]: c for p, c in files.items() if p.startswith(prefix)}
                    tree = _tree_sha(sub)
                    repo.trees[tree] = sub
                    entries[folder] = {
                        "path": folder,
                        "mode": "040000",
                        "type": "tree",
                        "sha": tree,
                        "url": f"{api}/git/trees/{tree}",
                    }
            if recursive or len(parts) == 1:
                blob = _blob_sha(files[path])
                entries[path] = {
                    "path": path,
                    "mode": "100644",
                    "type": "blob",
                    "sha": blob,
                    "size": len(files[path]),
                    "url": f"{api}/git/blobs/{blob}",
                }
        tree_sha = _tree_sha(files)
        repo.trees[tree_sha] = files
        return 200, {
            "sha": tree_sha,
            "url": f"{api}/git/trees/{tree_sha}",
            "tree": [entries[k] for k in sorted(entries)],
            "truncated": False,
        }

    def _compare(self, repo: FakeRepo, spec: str) -> Answer:
        base_ref, sep, head_ref = spec.partition("...")
        base, head = repo.resolve(base_ref), repo.resolve(head_ref)
        if not sep or base is None or head is None:
            return NOT_FOUND
        mb = repo.merge_base(base, head)
        if mb is None:
            return NOT_FOUND
        ahead, behind = repo.only_in(head, base), repo.only_in(base, head)
        if base == head:
            status = "identical"
        elif not behind:
            status = "ahead"
        else:
            status = "behind" if not ahead else "diverged"
        html = f"{self.url}/{repo.full_name}/compare/{base_ref}...{head_ref}"
        return 200, {
            "url": f"{self._repo_url(repo)}/compare/{base_ref}...{head_ref}",
            "html_url": html,
            "permalink_url": f"{self.url}/{repo.full_name}/compare/{base}...{head}",
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "base_commit": self._commit_json(repo, base),
            "merge_base_commit": self._commit_json(repo, mb),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": [self._commit_json(repo, c.sha) for c in ahead],
            "files": self._file_changes(
                repo, repo.commits[mb].files, repo.commits[head].files, head
            ),
        }

    def _check_run_json(self, repo: FakeRepo, sha: str, run: CheckRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "node_id": f"CR_{run.id}",
            "name": run.name,
            "head_sha": sha,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at),
            "url": f"{self._repo_url(repo)}/check-runs/{run.id}",
            "html_url": f"{self.url}/{repo.full_name}/runs/{run.id}",
            "details_url": f"{self.url}/{repo.full_name}/runs/{run.id}",
            "output": {"title": None, "summary": None, "text": None, "annotations_count": 0},
        }

    def _check_runs(self, repo: FakeRepo, ref: str) -> Answer:
        sha = repo.resolve(ref)
        if sha is None:
            return 422, {"message": f"No commit found for SHA: {ref}"}
        runs = [c for c in repo.contexts(sha) if isinstance(c, CheckRun)]
        return 200, {
            "total_count": len(runs),
            "check_runs": [self._check_run_json(repo, sha, r) for r in runs],
        }

    def _combined(self, repo: FakeRepo, ref: str) -> Answer:
        sha = repo.resolve(ref)
        if sha is None:
            return 422, {"message": f"No commit found for SHA: {ref}"}
        statuses = [c for c in repo.contexts(sha) if isinstance(c, CommitStatus)]
        outcomes = {s.outcome for s in statuses}
        state = (
            "failure"
            if "failing" in outcomes
            else "pending"
            if "pending" in outcomes or not statuses
            else "success"
        )
        return 200, {
            "state": state,
            "sha": sha,
            "total_count": len(statuses),
            "statuses": [
                {
                    "id": s.id,
                    "context": s.context,
                    "state": s.state,
                    "description": s.description,
                    "created_at": iso(s.created_at),
                    "updated_at": iso(s.created_at),
                    "target_url": None,
                }
                for s in statuses
            ],
            "repository": self._repo_json(repo),
            "commit_url": f"{self._repo_url(repo)}/commits/{sha}",
            "url": f"{self._repo_url(repo)}/commits/{sha}/status",
        }

    def _content_json(self, repo: FakeRepo, branch: str, path: str) -> dict[str, Any]:
        content = repo.files(branch)[path]
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(content),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.b64encode(content).decode(),
            "sha": _blob_sha(content),
            "url": f"{self._repo_url(repo)}/contents/{path}?ref={branch}",
            "html_url": f"{self.url}/{repo.full_name}/blob/{branch}/{path}",
        }

    def _get_file(self, repo: FakeRepo, path: str, query: dict[str, str]) -> Answer:
        branch = query.get("ref", repo.default_branch)
        if branch not in repo.branches or path not in repo.files(branch):
            return NOT_FOUND
        return 200, self._content_json(repo, branch, path)

    def _put_file(self, repo: FakeRepo, path: str, body: dict[str, Any]) -> Answer:
        branch = body.get("branch", repo.default_branch)
        if branch not in repo.branches:
            return 404, {"message": f"Branch {branch} not found"}
        files = dict(repo.files(branch))
        if path in files and not body.get("sha"):
            return 422, {"message": 'Invalid request.\n\n"sha" wasn\'t supplied.'}
        if path in files and body["sha"] != _blob_sha(files[path]):
            return 409, {"message": f"{path} does not match {body['sha']}"}
        existed = path in files
        files[path] = base64.b64decode(body["content"])
        sha = repo.commit(branch, files, body.get("message", ""))
        commit = {
            "sha": sha,
            "url": f"{self._repo_url(repo)}/git/commits/{sha}",
            "html_url": f"{self.url}/{repo.full_name}/commit/{sha}",
            "message": body.get("message", ""),
        }
        return (200 if existed else 201), {
            "content": self._content_json(repo, branch, path),
            "commit": commit,
        }

    def _pull_json(self, repo: FakeRepo, pull: FakePull, full: bool = True) -> dict[str, Any]:
        owner = repo.full_name.split("/")[0]
        number = pull.number

        def part(branch: str, sha: str) -> dict[str, Any]:
            return {
                "label": f"{owner}:{branch}",
                "ref": branch,
                "sha": sha,
                "repo": self._repo_json(repo),
            }

        data = {
            "id": int(pull.node_id[7:], 16) % 10**9,
            "node_id": pull.node_id,
            "number": number,
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "user": self.user_json(pull.author),
            "url": f"{self._repo_url(repo)}/pulls/{number}",
            "html_url": f"{self.url}/{repo.full_name}/pull/{number}",
            "issue_url": f"{self._repo_url(repo)}/issues/{number}",
            "created_at": iso(pull.created_at),
            "updated_at": iso(pull.updated_at),
            "closed_at": iso(pull.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "draft": pull.draft,
            "head": part(pull.head, repo.head_sha(pull)),
            "base": part(pull.base, repo.base_sha(pull)),
        }
        if full:
            state = repo.pull_state(pull)
            data |= {
                "merged": pull.merged,
                "mergeable": {"MERGEABLE": True, "CONFLICTING": False}.get(state.mergeable),
                "mergeable_state": state.merge_state.lower(),
                "merged_by": self.user_json(pull.merged_by),
            }
        return data

    def _list_pulls(self, repo: FakeRepo, query: dict[str, str]) -> list[dict[str, Any]]:
        owner = repo.full_name.split("/")[0]
        return [
            self._pull_json(repo, p, full=False)
            for p in repo.pulls.values()
            if query.get("state", "open") in (p.state, "all")
            and query.get("head", f"{owner}:{p.head}") == f"{owner}:{p.head}"
            and query.get("base", p.base) == p.base
        ]

    def _create_pull(self, repo: FakeRepo, body: dict[str, Any]) -> Answer:
        head = str(body.get("head", "")).split(":")[-1]
        base = body.get("base", "")
        invalid: dict[str, Any] = {"message": "Validation Failed", "errors": []}
        if head not in repo.branches or base not in repo.branches:
            field_name = "head" if head not in repo.branches else "base"
            invalid["errors"] = [
                {"resource": "PullRequest", "field": field_name, "code": "invalid"}
            ]
            return 422, invalid
        if repo.branches[head] == repo.branches[base]:
            message = f"No commits between {base} and {head}"
            invalid["errors"] = [{"resource": "PullRequest", "code": "custom", "message": message}]
            return 422, invalid
        owner = repo.full_name.split("/")[0]
        if any(p.head == head and p.state == "open" for p in repo.pulls.values()):
            message = f"A pull request already exists for {owner}:{head}."
            invalid["errors"] = [{"resource": "PullRequest", "code": "custom", "message": message}]
            return 422, invalid
        pull = self._new_pull(
            repo,
            head,
            base,
            body.get("title", ""),
            body.get("body", "") or "",
            bool(body.get("draft")),
            None,
        )
        return 201, self._pull_json(repo, pull)

    def _edit_pull(self, repo: FakeRepo, pull: FakePull, body: dict[str, Any]) -> Answer:
        pull.title = body.get("title", pull.title)
        pull.body = body.get("body", pull.body)
        if body.get("state") == "closed" and pull.state == "open":
            self._close(repo, pull, self.login)
        pull.updated_at = self.now()
        return 200, self._pull_json(repo, pull)

    def _merge_pull(self, repo: FakeRepo, pull: FakePull, body: dict[str, Any]) -> Answer:
        if pull.state != "open":
            return 405, {"message": NOT_MERGEABLE}
        method = body.get("merge_method", "merge")
        if method not in MERGE_METHODS:
            return 422, {"message": "Validation Failed", "errors": [{"field": "merge_method"}]}
        if body.get("sha") and body["sha"] != repo.head_sha(pull):
            return 409, {"message": HEAD_MODIFIED}
        state = repo.pull_state(pull, count_read=False)
        if state.merge_state not in ("CLEAN", "UNSTABLE", "HAS_HOOKS"):
            return 405, {"message": NOT_MERGEABLE}
        title, message = body.get("commit_title"), body.get("commit_message")
        sha = self._merge(repo, pull, method, self.login, title, message)
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}

    def _update(self, repo: FakeRepo, pull: FakePull, body: dict[str, Any]) -> Answer:
        if pull.state != "open":
            return 422, {"message": "Cannot update a closed pull request."}
        head, base = repo.head_sha(pull), repo.branches[pull.base]
        expected = body.get("expected_head_sha")
        if expected and expected != head:
            return 422, {"message": "expected head sha didn’t match current head ref."}
        if base in repo.ancestors(head):
            return 422, {"message": "There are no new commits on the base branch."}
        files, conflicts = repo.merged_files(base, head)
        if conflicts:
            return 422, {"message": "merge conflict between base and head"}
        text = f"Merge branch '{pull.base}' into {pull.head}"
        repo.commit(pull.head, files, text, (head, base))
        url = f"{self.url}/{repo.full_name}/pull/{pull.number}"
        return 202, {"message": "Updating pull request branch.", "url": url}

    def _reviews(self, repo: FakeRepo, pull: FakePull) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "node_id": f"PRR_{r.id}",
                "user": self.user_json(r.login),
                "state": r.state,
                "commit_id": r.commit_id,
                "submitted_at": iso(r.submitted_at),
                "body": "",
                "html_url": f"{self.url}/{repo.full_name}/pull/{pull.number}#review-{r.id}",
                "pull_request_url": f"{self._repo_url(repo)}/pulls/{pull.number}",
            }
            for r in pull.reviews
        ]

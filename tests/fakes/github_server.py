"""An in-memory GitHub on 127.0.0.1 speaking the REST shapes PyGithub uses to open PRs.

Repositories hold branches (name → commit sha), commits (sha → files) and pull requests. The
real PyGithub client talks to it through `GitHubResource(api_url=server.url)`. Faults can be
injected per request (`fail`), before the request is served or after it changed the state
(a lost answer), to exercise retries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.local_server import LocalServer, Reply

Answer = tuple[int, Any]
NOT_FOUND: Answer = (404, {"message": "Not Found"})


def _sha(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class FakeRepo:
    full_name: str
    default_branch: str = "main"
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)

    def files(self, branch: str) -> dict[str, bytes]:
        return self.commits[self.branches[branch]]

    def commit(self, branch: str, files: dict[str, bytes]) -> str:
        sha = _sha(self.full_name, self.branches.get(branch), sorted(files.items()))
        self.commits[sha] = files
        self.branches[branch] = sha
        return sha


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    times: int
    after: bool


class FakeGitHub(LocalServer):
    """GitHub REST for repos, git refs, contents and pulls; accepts one token."""

    def __init__(self, token: str = "fake-github-token") -> None:
        super().__init__()
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._next_pr = 1

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        status, data = self.handle(
            method, path, json.loads(body) if body else {}, headers.get("Authorization", "")
        )
        return Reply(status, data, {"Content-Type": "application/json; charset=utf-8"})

    def add_repo(self, full_name: str, files: dict[str, str] | None = None) -> FakeRepo:
        repo = FakeRepo(full_name)
        repo.commit(repo.default_branch, {p: c.encode() for p, c in (files or {}).items()})
        self.repos[full_name] = repo
        return repo

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
    ) -> None:
        """Answer the next `times` matching requests with `status` and `{"message": message}`
        (or `body`); with `after`, serve them first (the change happens, the answer is lost)."""
        answer = {"message": message} if body is None else body
        self.faults.append(Fault(method, re.compile(path_pattern), status, answer, times, after))

    def count(self, method: str, path_pattern: str) -> int:
        return sum(1 for m, p in self.requests if m == method and re.search(path_pattern, p))

    def _fault(self, method: str, path: str, after: bool) -> Answer | None:
        for fault in self.faults:
            matches = fault.method == method and fault.path.search(path)
            if fault.times and fault.after is after and matches:
                fault.times -= 1
                return fault.status, fault.body
        return None

    def handle(self, method: str, raw_path: str, body: Any, auth: str) -> Answer:
        parts = urlsplit(raw_path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append((method, path))
            if auth not in (f"token {self.token}", f"Bearer {self.token}"):
                return 401, {"message": "Bad credentials"}
            before = self._fault(method, path, after=False)
            if before:
                return before
            answer = self._route(method, path, query, body)
            return self._fault(method, path, after=True) or answer

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not match or match.group(1) not in self.repos:
            return NOT_FOUND
        repo, rest = self.repos[match.group(1)], match.group(2) or ""
        routes = [
            ("GET", r"", lambda m: (200, self._repo_json(repo))),
            ("GET", r"/git/ref/heads/(.+)", lambda m: self._get_ref(repo, unquote(m[1]))),
            ("POST", r"/git/refs", lambda m: self._create_ref(repo, body)),
            ("GET", r"/contents/(.+)", lambda m: self._get_file(repo, unquote(m[1]), query)),
            ("PUT", r"/contents/(.+)", lambda m: self._put_file(repo, unquote(m[1]), body)),
            ("GET", r"/pulls", lambda m: (200, self._list_pulls(repo, query))),
            ("POST", r"/pulls", lambda m: self._create_pull(repo, body)),
            ("GET", r"/pulls/(\d+)", lambda m: self._get_pull(repo, int(m[1]))),
        ]
        for verb, pattern, action in routes:
            found = re.fullmatch(pattern, rest)
            if verb == method and found:
                return action(found)
        return NOT_FOUND

    def _repo_url(self, repo: FakeRepo) -> str:
        return f"{self.url}/repos/{repo.full_name}"

    def _repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        owner, name = repo.full_name.split("/")
        return {
            "id": abs(hash(repo.full_name)) % 10**8,
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
        sha = repo.commit(branch, files)
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

    def _pull_json(self, repo: FakeRepo, pull: dict[str, Any]) -> dict[str, Any]:
        owner = repo.full_name.split("/")[0]
        number = pull["number"]

        def part(branch: str) -> dict[str, Any]:
            return {
                "label": f"{owner}:{branch}",
                "ref": branch,
                "sha": repo.branches[branch],
                "repo": self._repo_json(repo),
            }

        return {
            "id": number + 1000,
            "number": number,
            "state": pull["state"],
            "title": pull["title"],
            "body": pull["body"],
            "url": f"{self._repo_url(repo)}/pulls/{number}",
            "html_url": f"{self.url}/{repo.full_name}/pull/{number}",
            "head": part(pull["head"]),
            "base": part(pull["base"]),
            "merged": False,
            "mergeable": None,
            "draft": False,
        }

    def _list_pulls(self, repo: FakeRepo, query: dict[str, str]) -> list[dict[str, Any]]:
        owner = repo.full_name.split("/")[0]
        return [
            self._pull_json(repo, p)
            for p in repo.pulls.values()
            if query.get("state", "open") in (p["state"], "all")
            and query.get("head", f"{owner}:{p['head']}") == f"{owner}:{p['head']}"
            and query.get("base", p["base"]) == p["base"]
        ]

    def _create_pull(self, repo: FakeRepo, body: dict[str, Any]) -> Answer:
        head = str(body.get("head", "")).split(":")[-1]
        base = body.get("base", "")
        invalid = {"message": "Validation Failed", "errors": []}
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
        if any(p["head"] == head and p["state"] == "open" for p in repo.pulls.values()):
            message = f"A pull request already exists for {owner}:{head}."
            invalid["errors"] = [{"resource": "PullRequest", "code": "custom", "message": message}]
            return 422, invalid
        number, self._next_pr = self._next_pr, self._next_pr + 1
        repo.pulls[number] = {
            "number": number,
            "state": "open",
            "title": body.get("title", ""),
            "body": body.get("body", ""),
            "head": head,
            "base": base,
        }
        return 201, self._pull_json(repo, repo.pulls[number])

    def _get_pull(self, repo: FakeRepo, number: int) -> Answer:
        if number not in repo.pulls:
            return NOT_FOUND
        return 200, self._pull_json(repo, repo.pulls[number])

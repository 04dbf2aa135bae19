"""Opening a task's pull request with PyGithub, idempotently, and checking one that exists.

A retry of the same task reuses its branch, skips files that already hold the wanted content
and finds the pull request an earlier attempt opened, so no attempt opens a second one.
GitHub's answers are turned into the task's outcome: a token GitHub refuses blocks the task,
a missing repository or base branch and a refused change fail it, and 5xx answers, rate limits
and network errors send it back to the queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from github import Github, GithubException, RateLimitExceededException
from github.PullRequest import PullRequest
from github.Repository import Repository

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import (
    Artifact,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)

BRANCH_PREFIX = "juggernaut/"


@dataclass(frozen=True)
class FileWrite:
    path: str
    content: str


@dataclass(frozen=True)
class OpenedPullRequest:
    repo: str
    number: int
    url: str
    branch: str
    base: str
    head_sha: str
    created: bool
    files_committed: list[str]
    node_id: str | None = None


def pull_request_artifact(
    repo: str, number: int, url: str | None, head_sha: str | None, **details: Any
) -> Artifact:
    """The `pull_request` artifact its verifier checks: the PR exists with this head."""
    return Artifact(
        kind=ArtifactKind.PULL_REQUEST,
        uri=url,
        external_id=str(number),
        details={"repo": repo, "number": number, "head_sha": head_sha, **details},
    )


def branch_for_task(task_id: str) -> str:
    """The task's own branch, the same on every attempt: `juggernaut/<12 hex digits of id>`."""
    return BRANCH_PREFIX + task_id.replace("-", "")[:12]


def _github_message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.message or "no message")
    details = [
        str(e.get("message") or f"{e.get('field', '?')} {e.get('code', 'invalid')}")
        for e in data.get("errors") or []
        if isinstance(e, dict)
    ]
    return message + (f" ({'; '.join(details)})" if details else "")


def translate(exc: Exception, action: str, not_found: str | None = None) -> Exception:
    """The task outcome for a failed GitHub call made while `action`."""
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return RetriableError(f"{action}: GitHub did not answer ({type(exc).__name__})")
    if not isinstance(exc, GithubException):
        return exc
    status, message = exc.status, _github_message(exc)
    if isinstance(exc, RateLimitExceededException):
        return RetriableError(f"{action}: GitHub rate limit reached ({status} {message})")
    if status == 401:
        return TaskBlocked(
            f"GitHub rejected the token while {action} (401 {message}): "
            "set a valid GITHUB_TOKEN, then retry the task"
        )
    if status == 403:
        return TaskBlocked(
            f"GitHub refused {action} (403 {message}): the token lacks the permission "
            "(it needs contents and pull requests write access)"
        )
    if status == 404:
        return TaskRejected(not_found or f"{action}: GitHub answered 404 {message}")
    if status == 409:
        return RetriableError(f"{action}: conflict with a concurrent change (409 {message})")
    if status == 422:
        return TaskRejected(f"GitHub refused {action} (422 {message})")
    if status >= 500:
        return RetriableError(f"{action}: GitHub answered {status} {message}")
    return TaskRejected(f"{action}: GitHub answered {status} {message}")


@contextlib.contextmanager
def github_call(action: str, not_found: str | None = None) -> Iterator[None]:
    """Turn GitHub and network errors raised inside into task outcomes."""
    try:
        yield
    except (GithubException, requests.RequestException) as exc:
        raise translate(exc, action, not_found) from None


def repository(client: Github, name: str) -> Repository:
    """`name` as a lazy repository: no request until an attribute GitHub must send is read.

    Built on the client's own requester (PyGithub's `get_repo(name, lazy=True)` would make a
    new requester each time, losing the client's shared pacing and connection pool). Its
    `full_name` comes from the URL, so reading it costs nothing.
    """
    return Repository(client.requester, url=f"/repos/{name}", completed=False)


def _ref_sha(client: Github, repo: Repository, branch: str, missing_base: bool = False) -> str:
    action = f"reading branch {branch} of {repo.full_name}"
    try:
        return repo.get_git_ref(f"heads/{branch}").object.sha
    except GithubException as exc:
        if exc.status == 404 and missing_base:
            raise _missing_repo_or_base(client, repo.full_name, branch) from None
        raise translate(exc, action) from None
    except requests.RequestException as exc:
        raise translate(exc, action) from None


def _missing_repo_or_base(client: Github, name: str, base: str) -> TaskRejected:
    """Which of the repository and its base branch GitHub's 404 meant (one more request)."""
    with github_call(
        f"reading repository {name}",
        f"repository {name} does not exist, or the token cannot see it",
    ):
        repository(client, name).complete()
    return TaskRejected(f"base branch '{base}' does not exist in {name}")


def _create_branch(repo: Repository, branch: str, base_sha: str) -> bool:
    """Create `branch` at `base_sha`; False when it already exists (an earlier attempt's)."""
    try:
        repo.create_git_ref(f"refs/heads/{branch}", base_sha)
    except GithubException as exc:
        if exc.status == 422 and "already exists" in _github_message(exc):
            return False
        raise translate(exc, f"creating branch {branch}") from None
    except requests.RequestException as exc:
        raise translate(exc, f"creating branch {branch}") from None
    return True


def _write_file(repo: Repository, branch: str, change: FileWrite, message: str) -> str | None:
    """Commit `change` on `branch` unless the file already holds it; the new commit's sha."""
    wanted = change.content.encode()
    current_sha = None
    try:
        current = repo.get_contents(change.path, ref=branch)
    except GithubException as exc:
        if exc.status != 404:
            raise translate(exc, f"reading {change.path}") from None
    except requests.RequestException as exc:
        raise translate(exc, f"reading {change.path}") from None
    else:
        if isinstance(current, list):
            raise TaskRejected(f"{change.path} is a directory in {repo.full_name}, not a file")
        if current.encoding == "base64" and current.decoded_content == wanted:
            return None
        current_sha = current.sha
    with github_call(f"committing {change.path} on {branch}"):
        if current_sha is None:
            written = repo.create_file(change.path, message, wanted, branch=branch)
        else:
            written = repo.update_file(change.path, message, wanted, current_sha, branch=branch)
    return written["commit"].sha


def _open_pull(repo: Repository, owner: str, branch: str, base: str) -> PullRequest | None:
    with github_call(f"listing pull requests of {repo.full_name}"):
        pulls = repo.get_pulls(state="open", head=f"{owner}:{branch}", base=base)
        return next(iter(pulls), None)


def _create_pull(
    repo: Repository, owner: str, branch: str, base: str, title: str, body: str
) -> tuple[PullRequest, bool]:
    """Open the pull request (True), or after GitHub's 422 find the one a racing attempt
    opened (False)."""
    action = f"opening a pull request from {branch} into {base}"
    try:
        return repo.create_pull(base=base, head=branch, title=title, body=body), True
    except GithubException as exc:
        pull = _open_pull(repo, owner, branch, base) if exc.status == 422 else None
        if pull is None:
            raise translate(exc, action) from None
        return pull, False
    except requests.RequestException as exc:
        raise translate(exc, action) from None


def open_pull_request(
    client: Github,
    *,
    repo_name: str,
    base: str,
    branch: str,
    title: str,
    body: str,
    changes: Sequence[FileWrite],
) -> OpenedPullRequest:
    """Branch from `base`, commit each change on it, and open (or find) the pull request.

    A first attempt costs 3 + 2 per changed file requests: read `base`, create the branch, read
    and write each file, open the pull request. A retry finds the branch through GitHub's 422,
    skips files that already hold their content, and looks for an open pull request before
    opening one.
    """
    repo = repository(client, repo_name)
    base_sha = _ref_sha(client, repo, base, missing_base=True)
    fresh = _create_branch(repo, branch, base_sha)
    head_sha: str | None = base_sha if fresh else None
    committed = []
    for change in changes:
        sha = _write_file(repo, branch, change, f"{title}: {change.path}\n\n{body}")
        if sha is not None:
            committed.append(change.path)
            head_sha = sha
    owner = repo_name.split("/", 1)[0]
    pull, created = (None if fresh else _open_pull(repo, owner, branch, base)), False
    if pull is None:
        if head_sha is None:
            head_sha = _ref_sha(client, repo, branch)
        if head_sha == base_sha:
            raise TaskRejected(
                f"the changes are already on {base} in {repo_name}: "
                "there is nothing to open a pull request for"
            )
        pull, created = _create_pull(repo, owner, branch, base, title, body)
    return OpenedPullRequest(
        repo=repo_name,
        number=pull.number,
        url=pull.html_url,
        branch=branch,
        base=base,
        head_sha=pull.head.sha,
        created=created,
        files_committed=committed,
        node_id=pull.node_id,
    )


def check_pull_request(client: Github, details: dict[str, Any]) -> str | None:
    """None when `details` names an existing pull request whose head is at `head_sha`."""
    repo, number, head_sha = details.get("repo"), details.get("number"), details.get("head_sha")
    if not (isinstance(repo, str) and isinstance(number, int) and isinstance(head_sha, str)):
        return "pull request artifact needs repo, number and head_sha"
    try:
        pull = repository(client, repo).get_pull(number)
        actual = pull.head.sha
    except GithubException as exc:
        if exc.status == 404:
            return f"pull request {repo}#{number} does not exist"
        return f"could not read {repo}#{number}: GitHub answered {exc.status}"
    except requests.RequestException as exc:
        return f"could not read {repo}#{number}: {type(exc).__name__}"
    if actual != head_sha:
        return f"head of {repo}#{number} is {actual[:12]}, expected {head_sha[:12]}"
    return None

"""GitHub access for code tasks and pull-request follow-up: REST through PyGithub, GraphQL
through httpx."""

from __future__ import annotations

import fnmatch
import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import dagster as dg
import github
import httpx
import pydantic

from juggernaut_assets.lib.github_urls import graphql_url_for
from juggernaut_assets.resources.bounded_http import ResponseTooLarge, send_bounded

_clients: dict[tuple[str, str, float, float], github.Github] = {}
_clients_lock = threading.Lock()


class GitHubRateLimited(Exception):
    """GitHub asked us to wait (a secondary limit, or the primary budget is spent)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GitHubApiError(Exception):
    """GitHub answered a GraphQL request with an error that waiting does not fix."""


def matches_repo(repo: str, patterns: Sequence[str]) -> bool:
    """True when `repo` (`owner/name`) matches an entry (`owner/name` or `owner/*`)."""
    name = repo.lower()
    return any(fnmatch.fnmatchcase(name, p.strip().lower()) for p in patterns if p.strip())


def _retry_after(response: httpx.Response, default: float = 60.0) -> float:
    value = response.headers.get("retry-after")
    try:
        return max(float(value), 1.0) if value else default
    except ValueError:
        return default


class GitHubResource(dg.ConfigurableResource):
    """GitHub access for code tasks and for `pr_state_sensor`.

    - `token`: bound from `GITHUB_TOKEN` (never logged, never in metadata). Without it, code
      tasks are `blocked` with "GITHUB_TOKEN is not configured" and pull requests are not
      followed. The token is sent only to `api_url` and `graphql_url`.
    - `api_url`: bound from `JUGGERNAUT_GITHUB_API_URL` (GitHub Enterprise, or a local server
      in tests).
    - `graphql_url`: bound from `JUGGERNAUT_GITHUB_GRAPHQL_URL`; unset, it is derived from
      `api_url` (`https://api.github.com` → `…/graphql`, `https://HOST/api/v3` →
      `https://HOST/api/graphql`, any other base → `{base}/graphql`).
    - `allowed_repos`: the repositories code tasks may open pull requests in, as `owner/name`
      (case-insensitive; `owner/*` allows every repository of an owner), bound from the
      comma-separated `JUGGERNAUT_GITHUB_REPOS`. Empty means no repository is allowed: a task
      for a repository outside the list waits in `waiting_approval` until an operator
      approves it.
    - `automerge_repos`: the repositories whose pull requests may be merged automatically
      (`JUGGERNAUT_AUTOMERGE_REPOS`, same syntax). Empty: pull requests are followed, never
      merged.
    - `merge_method`: `squash` (default), `merge` or `rebase`
      (`JUGGERNAUT_GITHUB_MERGE_METHOD`).
    - `pr_max_age_hours`: a pull request without progress for this long fails its task
      (`JUGGERNAUT_PR_MAX_AGE_HOURS`, default 168).

    REST clients are shared per token within a process, so PyGithub's pacing of requests and
    of content-creating writes holds across every task of a run, not only within one.
    """

    token: str | None = None
    api_url: str = "https://api.github.com"
    graphql_url: str | None = None
    allowed_repos: list[str] = pydantic.Field(default_factory=list)
    automerge_repos: list[str] = pydantic.Field(default_factory=list)
    merge_method: Literal["squash", "merge", "rebase"] = "squash"
    pr_max_age_hours: float = 168.0
    seconds_between_requests: float = 0.25
    seconds_between_writes: float = 1.0
    """PyGithub's pacing, which follows GitHub's guidance for content-creating requests."""
    timeout_seconds: float = 30.0
    graphql_max_response_bytes: int = 32 * 1024 * 1024
    """A GraphQL answer larger than this is refused (100 pull requests are well under 1 MB)."""

    @property
    def configured(self) -> bool:
        return bool(self.token)

    def allows(self, repo: str) -> bool:
        """True when code tasks may open pull requests in `repo` without approval."""
        return matches_repo(repo, self.allowed_repos)

    def may_merge(self, repo: str) -> bool:
        """True when `pr_state_sensor` may merge pull requests of `repo`."""
        return matches_repo(repo, self.automerge_repos)

    @property
    def resolved_graphql_url(self) -> str:
        return self.graphql_url or graphql_url_for(self.api_url)

    def client(self) -> github.Github:
        """The process's PyGithub client for this token and API (created once, then shared)."""
        digest = hashlib.sha256((self.token or "").encode()).hexdigest()
        key = (digest, self.api_url, self.seconds_between_requests, self.seconds_between_writes)
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = github.Github(
                    auth=github.Auth.Token(self.token or ""),
                    base_url=self.api_url,
                    retry=None,
                    timeout=int(self.timeout_seconds),
                    seconds_between_requests=self.seconds_between_requests,
                    seconds_between_writes=self.seconds_between_writes,
                )
                _clients[key] = client
        return client

    def graphql(
        self,
        http: httpx.Client,
        query: str,
        variables: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST one GraphQL document; returns its `data`.

        Raises `GitHubRateLimited` with how long to wait on a 403/429 that carries
        `Retry-After` (secondary limits), on a spent primary budget
        (`x-ratelimit-remaining: 0`) and on a `RATE_LIMITED` error; `GitHubApiError` on other
        refusals and on GraphQL errors that come without data.
        """
        try:
            response = send_bounded(
                http,
                "POST",
                self.resolved_graphql_url,
                max_bytes=self.graphql_max_response_bytes,
                json={"query": query, "variables": variables or {}},
                headers={
                    "Authorization": f"bearer {self.token or ''}",
                    "Accept": "application/json",
                },
                timeout=self.timeout_seconds,
            )
        except ResponseTooLarge as exc:
            raise GitHubApiError(f"GitHub GraphQL answer refused: {exc}") from None
        if response.status_code in (403, 429):
            if response.headers.get("retry-after"):
                raise GitHubRateLimited(
                    f"GitHub secondary rate limit ({response.status_code})",
                    _retry_after(response),
                )
            if response.headers.get("x-ratelimit-remaining") == "0":
                reset = float(response.headers.get("x-ratelimit-reset") or 0)
                wait = max(reset - time.time(), 1.0) if reset else 60.0
                raise GitHubRateLimited("GitHub GraphQL budget spent", wait)
        if response.status_code >= 400:
            raise GitHubApiError(
                f"GitHub GraphQL answered {response.status_code}: {_message(response)}"
            )
        body = response.json()
        errors = body.get("errors") or []
        if any(isinstance(e, dict) and e.get("type") == "RATE_LIMITED" for e in errors):
            raise GitHubRateLimited("GitHub GraphQL budget spent", _retry_after(response))
        data = body.get("data")
        if not isinstance(data, dict):
            messages = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
            raise GitHubApiError(f"GitHub GraphQL returned no data: {messages or 'no message'}")
        return data


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", "")) if isinstance(body, dict) else str(body)[:200]

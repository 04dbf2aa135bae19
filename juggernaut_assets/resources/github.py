"""GitHub access for code tasks (PyGithub)."""

from __future__ import annotations

import fnmatch

import dagster as dg
import github
import pydantic


class GitHubResource(dg.ConfigurableResource):
    """GitHub REST access for code tasks.

    - `token`: bound from `GITHUB_TOKEN` (never logged, never in metadata). Without it, code
      tasks are `blocked` with "GITHUB_TOKEN is not configured".
    - `api_url`: bound from `JUGGERNAUT_GITHUB_API_URL` (GitHub Enterprise, or a local server
      in tests).
    - `allowed_repos`: the repositories code tasks may open pull requests in, as `owner/name`
      (case-insensitive; `owner/*` allows every repository of an owner), bound from the
      comma-separated `JUGGERNAUT_GITHUB_REPOS`. Empty means no repository is allowed: a task
      for a repository outside the list waits in `waiting_approval` until an operator
      approves it.
    """

    token: str | None = None
    api_url: str = "https://api.github.com"
    allowed_repos: list[str] = pydantic.Field(default_factory=list)
    seconds_between_requests: float = 0.25
    seconds_between_writes: float = 1.0
    """PyGithub's pacing, which follows GitHub's guidance for content-creating requests."""

    @property
    def configured(self) -> bool:
        return bool(self.token)

    def allows(self, repo: str) -> bool:
        """True when `repo` (`owner/name`) matches an entry of `allowed_repos`."""
        name = repo.lower()
        return any(
            fnmatch.fnmatchcase(name, pattern.strip().lower()) for pattern in self.allowed_repos
        )

    def client(self) -> github.Github:
        return github.Github(
            auth=github.Auth.Token(self.token or ""),
            base_url=self.api_url,
            retry=None,
            seconds_between_requests=self.seconds_between_requests,
            seconds_between_writes=self.seconds_between_writes,
        )

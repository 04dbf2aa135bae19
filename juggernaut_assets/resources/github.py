"""GitHub access for code tasks (PyGithub)."""

from __future__ import annotations

import dagster as dg
import github


class GitHubResource(dg.ConfigurableResource):
    """GitHub REST access. `token` is bound from `GITHUB_TOKEN` (never logged, never in
    metadata); `api_url` from `JUGGERNAUT_GITHUB_API_URL` (GitHub Enterprise, or a local
    server in tests). Without a token, code tasks are `blocked` with that reason."""

    token: str | None = None
    api_url: str = "https://api.github.com"

    @property
    def configured(self) -> bool:
        return bool(self.token)

    def client(self) -> github.Github:
        return github.Github(
            auth=github.Auth.Token(self.token or ""), base_url=self.api_url, retry=None
        )

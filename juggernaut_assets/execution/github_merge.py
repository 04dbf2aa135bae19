"""Checking a merge against GitHub: the pull request is merged, by this commit, and the commit
is on the base branch."""

from __future__ import annotations

from typing import Any

import requests
from github import Github, GithubException

from juggernaut_assets.execution.github_pr import repository


def commit_url(pr_url: str | None, sha: str) -> str | None:
    """`https://github.com/o/r/pull/12` → `https://github.com/o/r/commit/<sha>`."""
    if not pr_url or "/pull/" not in pr_url:
        return None
    return pr_url.rsplit("/pull/", 1)[0] + f"/commit/{sha}"


def check_merge_commit(client: Github, details: dict[str, Any]) -> str | None:
    """None when `details` (`repo`, `number`, `sha`, `base`) describe a real merge."""
    repo_name, number = details.get("repo"), details.get("number")
    sha, base = details.get("sha"), details.get("base")
    if not (
        isinstance(repo_name, str)
        and isinstance(number, int)
        and isinstance(sha, str)
        and sha
        and isinstance(base, str)
        and base
    ):
        return "merge commit artifact needs repo, number, sha and base"
    repo = repository(client, repo_name)
    try:
        pull = repo.get_pull(number)
        merged, merge_sha = pull.merged, pull.merge_commit_sha
        if not merged:
            return f"{repo_name}#{number} is not merged"
        if merge_sha != sha:
            return f"{repo_name}#{number} was merged as {str(merge_sha)[:12]}, not {sha[:12]}"
        status = repo.compare(base, sha).status
    except GithubException as exc:
        if exc.status == 404:
            return f"{repo_name}#{number} or commit {sha[:12]} does not exist"
        return f"could not check the merge of {repo_name}#{number}: GitHub answered {exc.status}"
    except requests.RequestException as exc:
        return f"could not check the merge of {repo_name}#{number}: {type(exc).__name__}"
    if status not in ("identical", "behind"):
        return f"merge commit {sha[:12]} is not on {base} (compare says {status})"
    return None

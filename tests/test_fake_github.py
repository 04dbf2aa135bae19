"""The local GitHub's protocol, pinned with the real clients: PyGithub (REST), httpx (GraphQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import github
import httpx
import pytest

from juggernaut_assets.lib.pr_query import FRAGMENT
from tests.fakes.github_server import FakeGitHub

TOKEN = "fake-github-token"
REPO = "acme/app"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as server:
        server.add_repo(REPO, {"README.md": "hello\n", "src/app.py": "A = 1\n"})
        yield server


def _client(server: FakeGitHub) -> github.Github:
    return github.Github(
        auth=github.Auth.Token(TOKEN),
        base_url=server.url,
        retry=None,
        seconds_between_requests=0,
        seconds_between_writes=0,
    )


def _graphql(server: FakeGitHub, query: str, **variables: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"bearer {TOKEN}"},
    )


def test_pygithub_updates_a_behind_branch_then_squash_merges_onto_base(gh):
    gh.repos[REPO].strict = gh.repos[REPO].reviews_required = True
    gh.open_pull(REPO, "feature", {"src/new.py": "B = 2\n"}, title="Add new")
    base_before = gh.advance_base(REPO, {"README.md": "moved\n"})
    repo = _client(gh).get_repo(REPO)
    pull = repo.get_pull(1)
    assert (pull.mergeable, pull.mergeable_state) == (True, "behind")
    assert pull.node_id.startswith("PR_")

    assert pull.update_branch(expected_head_sha="0" * 40) is False
    assert pull.update_branch(expected_head_sha=pull.head.sha) is True
    head = gh.head_sha(REPO, 1)
    assert [p.sha for p in repo.get_commit(head).parents] == [pull.head.sha, base_before]
    assert repo.get_pull(1).mergeable_state == "blocked"
    with pytest.raises(github.GithubException) as refused:
        pull.merge(merge_method="squash", sha=head)
    assert refused.value.status == 405

    gh.approve(REPO, 1, "alice")
    gh.add_check(REPO, head, "ci")
    assert repo.get_pull(1).mergeable_state == "clean"
    with pytest.raises(github.GithubException) as moved:
        pull.merge(merge_method="squash", sha=pull.head.sha)
    assert moved.value.status == 409 and "Head branch was modified" in moved.value.data["message"]

    merged = pull.merge(merge_method="squash", sha=head, commit_title="Add new (#1)")
    assert merged.merged and gh.contains(REPO, "main", merged.sha)
    commit = repo.get_commit(merged.sha)
    assert [p.sha for p in commit.parents] == [base_before]
    assert commit.commit.message == "Add new (#1)" and [f.filename for f in commit.files] == [
        "src/new.py"
    ]
    after = repo.get_pull(1)
    assert (after.merged, after.merged_by.login, after.merge_commit_sha) == (
        True,
        gh.login,
        merged.sha,
    )
    assert repo.compare("main", merged.sha).status == "identical"
    ahead = repo.compare(base_before, "main")
    assert (ahead.status, ahead.ahead_by, ahead.merge_base_commit.sha) == ("ahead", 1, base_before)
    tree = repo.get_git_tree("main", recursive=True).tree
    assert {(e.path, e.type, e.size) for e in tree if e.type == "blob"} == {
        ("README.md", "blob", 6),
        ("src/app.py", "blob", 6),
        ("src/new.py", "blob", 6),
    }


def test_graphql_reads_pull_requests_through_aliases_nodes_and_fragments(gh):
    clean = gh.open_pull(REPO, "clean", {"src/a.py": "x\n"})
    gh.open_pull(REPO, "dirty", {"README.md": "mine\n"})
    closed = gh.open_pull(REPO, "gone", {"src/b.py": "y\n"})
    gh.add_check(REPO, "clean", "ci", conclusion="skipped")
    gh.add_status(REPO, "clean", "lint", "success")
    gh.advance_base(REPO, {"README.md": "theirs\n"})
    gh.close(REPO, closed.number, "bob")
    gh.mergeability_unknown(REPO, clean.number, reads=1)
    query = (
        """query($ids: [ID!]!) {
      rateLimit { cost remaining resetAt limit }
      nodes(ids: $ids) { ... on PullRequest { ...S } }
      r0: repository(owner: "acme", name: "app") {
        p1: pullRequest(number: 1) { ...S } p2: pullRequest(number: 2) { ...S }
      }
    }"""
        + FRAGMENT
    )

    body = _graphql(gh, query, ids=[clean.node_id, "PR_unknown", closed.node_id]).json()
    data = body["data"]
    assert data["rateLimit"]["cost"] == 1 and data["rateLimit"]["remaining"] == 4999
    first, missing, gone = data["nodes"]
    assert missing is None and body["errors"][0]["type"] == "NOT_FOUND"
    assert body["errors"][0]["path"] == ["nodes", 1]
    assert (first["mergeable"], first["mergeStateStatus"]) == ("UNKNOWN", "UNKNOWN")
    assert data["r0"]["p1"]["mergeStateStatus"] == "UNKNOWN", "one read spends the UNKNOWN once"
    [commit] = first["commits"]["nodes"]
    assert commit["commit"]["oid"] == first["headRefOid"] == gh.head_sha(REPO, 1)
    rollup = commit["commit"]["statusCheckRollup"]
    assert rollup["state"] == "SUCCESS" and rollup["contexts"]["nodes"] == [
        {"__typename": "CheckRun", "name": "ci", "status": "COMPLETED", "conclusion": "SKIPPED"},
        {"__typename": "StatusContext", "context": "lint", "state": "SUCCESS"},
    ]
    dirty = data["r0"]["p2"]
    assert (dirty["mergeable"], dirty["mergeStateStatus"], dirty["reviewDecision"]) == (
        "CONFLICTING",
        "DIRTY",
        None,
    )
    assert dirty["commits"]["nodes"][0]["commit"]["statusCheckRollup"] is None
    assert (gone["state"], gone["merged"], gone["closedAt"] is not None) == ("CLOSED", False, True)
    assert gone["timelineItems"]["nodes"][0]["actor"] == {"login": "bob"}

    again = _graphql(gh, query, ids=[clean.node_id]).json()["data"]
    assert again["nodes"][0]["mergeStateStatus"] == "CLEAN"
    assert gh.graphql_count == 2 and gh.count("POST", r"^/graphql$") == 2


@pytest.mark.parametrize(
    ("status", "conclusion", "rollup", "merge_state"),
    [
        ("completed", "neutral", "SUCCESS", "CLEAN"),
        ("in_progress", None, "PENDING", "UNSTABLE"),
        ("completed", "timed_out", "FAILURE", "UNSTABLE"),
        ("completed", "action_required", "FAILURE", "UNSTABLE"),
    ],
)
def test_check_runs_pass_fail_or_pend_by_the_merge_policy(
    gh, status, conclusion, rollup, merge_state
):
    gh.open_pull(REPO, "feature", {"src/a.py": "x\n"})
    gh.add_check(REPO, "feature", "ci", status=status, conclusion=conclusion)
    query = (
        """{ repository(owner: "acme", name: "app") { pullRequest(number: 1) { ...S } } }"""
        + FRAGMENT
    )
    pull = _graphql(gh, query).json()["data"]["repository"]["pullRequest"]
    assert pull["mergeStateStatus"] == merge_state
    assert pull["commits"]["nodes"][0]["commit"]["statusCheckRollup"]["state"] == rollup


def test_graphql_budget_pagination_and_node_limits_answer_like_github(gh):
    gh.open_pull(REPO, "feature", {"src/a.py": "x\n"})
    aliases = " ".join(f"p{i}: pullRequest(number: 1) {{ ...S }}" for i in range(100))
    costly = '{ repository(owner: "acme", name: "app") { ' + aliases + " } }" + FRAGMENT
    gh.graphql_remaining = 2
    spent = _graphql(gh, costly)
    assert spent.status_code == 200 and "data" not in spent.json()
    assert spent.json()["errors"][0]["type"] == "RATE_LIMITED"
    assert spent.headers["x-ratelimit-remaining"] == "2" and int(spent.headers["x-ratelimit-reset"])
    cheap = _graphql(gh, "{ rateLimit { cost remaining } }").json()["data"]["rateLimit"]
    assert cheap == {"cost": 1, "remaining": 1}

    gh.graphql_remaining = 5000
    assert _graphql(gh, costly).json()["data"]["repository"]["p99"]["number"] == 1
    assert gh.graphql_costs[-1] == 3

    too_many = _graphql(gh, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", ids=["x"] * 101)
    wide = '{ repository(owner: "acme", name: "app") { pullRequests(first: 101) { totalCount } } }'
    unbounded = '{ repository(owner: "acme", name: "app") { pullRequests { totalCount } } }'
    assert [_graphql(gh, q).json()["errors"][0]["type"] for q in (wide, unbounded)] == [
        "EXCESSIVE_PAGINATION",
        "MISSING_PAGINATION_BOUNDARIES",
    ]
    assert (
        "data" not in too_many.json() and "100 node IDs" in too_many.json()["errors"][0]["message"]
    )


def test_secondary_limit_and_lost_merge_answer_faults(gh):
    gh.open_pull(REPO, "feature", {"src/a.py": "x\n"})
    gh.secondary_limit("POST", r"^/graphql$", retry_after=7, status=429)
    limited = _graphql(gh, "{ viewer { login } }")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    assert limited.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert _graphql(gh, "{ viewer { login } }").json()["data"] == {"viewer": {"login": gh.login}}

    pull = _client(gh).get_repo(REPO).get_pull(1)
    gh.fail("PUT", r"/pulls/1/merge$", 502, "Bad Gateway", after=True)
    with pytest.raises(github.GithubException) as lost:
        pull.merge(merge_method="squash", sha=pull.head.sha)
    assert lost.value.status == 502
    assert gh.pull(REPO, 1).merged and gh.count("PUT", r"/pulls/1/merge$") == 1

"""What GitHub work costs and where the token goes: real httpx and PyGithub against servers on
127.0.0.1 that count and record every request they receive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from juggernaut_assets.assets.market_trends import market_trends
from juggernaut_assets.execution.github_pr import (
    FileWrite,
    check_pull_request,
    open_pull_request,
    repository,
)
from juggernaut_assets.execution.outcome import RetriableError, TaskRejected
from juggernaut_assets.lib.sources import github as github_search
from juggernaut_assets.lib.sources.base import SourceRequest
from juggernaut_assets.lib.sources.tracked import TrackedItems
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.http_sources import HttpSources
from juggernaut_assets.resources.polars_io import PolarsParquetIOManager
from tests.fakes.github_server import FakeGitHub
from tests.fakes.http_server import LocalHTTPServer, Reply

TOKEN = "fake-github-token"
DAY = "2026-11-23"
SEARCH = "/search/repositories"
SEARCH_ANSWER = {
    "total_count": 1,
    "incomplete_results": False,
    "items": [
        {
            "full_name": "octo/agent",
            "stargazers_count": 12,
            "language": "Python",
            "topics": ["ai-agents"],
        }
    ],
}
NEW_FILES = [FileWrite("docs/notes.md", "notes\n"), FileWrite("src/new_module.py", "VALUE = 42\n")]
BRANCH = "juggernaut/0123456789ab"


@pytest.fixture
def enterprise() -> Iterator[LocalHTTPServer]:
    """The host `JUGGERNAUT_GITHUB_API_URL` names: the only one the token belongs to."""
    with LocalHTTPServer() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[LocalHTTPServer]:
    """Any other host (public GitHub, a mirror, a redirect target)."""
    with LocalHTTPServer() as server:
        yield server


def _scan(tmp_path: Path, sources: HttpSources) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [market_trends],
        partition_key=DAY,
        resources={
            "http_sources": sources,
            "io_manager": PolarsParquetIOManager(base_path=str(tmp_path / "assets")),
        },
        run_config={"ops": {"market_trends": {"config": {"sources": ["github"]}}}},
    )


def _sources(search_base: str, api_url: str) -> HttpSources:
    return HttpSources(
        github_token=TOKEN,
        github_api_url=api_url,
        base_urls={"github": search_base},
        seconds_between_requests=0.0,
        max_attempts=1,
    )


def test_search_on_another_host_than_the_tokens_goes_without_the_token(
    tmp_path, enterprise, elsewhere
):
    elsewhere.route("GET", SEARCH, Reply(200, SEARCH_ANSWER))
    result = _scan(tmp_path, _sources(elsewhere.url, api_url=f"{enterprise.url}/api/v3"))
    assert result.success
    [request] = elsewhere.received
    assert "Authorization" not in request.headers
    assert enterprise.received == []


def test_default_api_url_keeps_the_token_off_any_other_host(tmp_path, elsewhere):
    elsewhere.route("GET", SEARCH, Reply(200, SEARCH_ANSWER))
    sources = HttpSources(
        github_token=TOKEN, base_urls={"github": elsewhere.url}, seconds_between_requests=0.0
    )
    assert _scan(tmp_path, sources).success
    [request] = elsewhere.received
    assert "Authorization" not in request.headers


def test_search_on_the_tokens_host_carries_the_token(tmp_path, enterprise, elsewhere):
    enterprise.route("GET", f"/api/v3{SEARCH}", Reply(200, SEARCH_ANSWER))
    api = f"{enterprise.url}/api/v3"
    result = _scan(tmp_path, _sources(api, api_url=api))
    assert result.success
    [request] = enterprise.received
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert elsewhere.received == []
    frame = result.output_for_node("market_trends")
    assert set(frame["term"]) == {"ai agents", "python"}


def test_redirect_to_another_host_drops_the_token(tmp_path, enterprise, elsewhere):
    target = elsewhere.route("GET", SEARCH, Reply(200, SEARCH_ANSWER))
    enterprise.route("GET", SEARCH, Reply(302, b"", {"Location": f"{target}?q=moved"}))
    result = _scan(tmp_path, _sources(enterprise.url, api_url=enterprise.url))
    assert result.success
    [first] = enterprise.received
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    [redirected] = elsewhere.received
    assert redirected.path == f"{SEARCH}?q=moved"
    assert "Authorization" not in redirected.headers


def test_token_needs_the_same_scheme_and_port_not_only_the_host(enterprise):
    sources = _sources(enterprise.url, api_url=enterprise.url)
    [same] = _requests(enterprise.url)
    [other_port] = _requests(enterprise.url.rsplit(":", 1)[0] + ":1")
    [other_scheme] = _requests(enterprise.url.replace("http://", "https://"))
    assert sources._sends_github_token(same)
    assert not sources._sends_github_token(other_port)
    assert not sources._sends_github_token(other_scheme)


def _requests(base: str) -> list[SourceRequest]:
    return github_search.requests_for(TrackedItems(), date.fromisoformat(DAY), base)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as server:
        server.add_repo("acme/app", {"README.md": "hello\n"})
        yield server


def _resource(server: FakeGitHub, token: str = TOKEN, writes: float = 0.0) -> GitHubResource:
    return GitHubResource(
        token=token, api_url=server.url, seconds_between_requests=0, seconds_between_writes=writes
    )


def _open(server: FakeGitHub, branch: str = BRANCH, changes=NEW_FILES, resource=None):
    return open_pull_request(
        (resource or _resource(server)).client(),
        repo_name="acme/app",
        base="main",
        branch=branch,
        title="Add notes",
        body="Opened by a test.",
        changes=changes,
    )


def test_first_attempt_with_two_new_files_costs_7_requests_was_11(gh):
    """Before: 11 (repository, base ref, branch ref, create branch, 2 × read + write, head ref
    again, list pull requests, open). After: 7."""
    pr = _open(gh)
    assert pr.created and pr.files_committed == ["docs/notes.md", "src/new_module.py"]
    assert gh.requests == [
        ("GET", "/repos/acme/app/git/ref/heads/main"),
        ("POST", "/repos/acme/app/git/refs"),
        ("GET", "/repos/acme/app/contents/docs/notes.md"),
        ("PUT", "/repos/acme/app/contents/docs/notes.md"),
        ("GET", "/repos/acme/app/contents/src/new_module.py"),
        ("PUT", "/repos/acme/app/contents/src/new_module.py"),
        ("POST", "/repos/acme/app/pulls"),
    ]
    repo = gh.repos["acme/app"]
    assert pr.head_sha == repo.branches[BRANCH]
    assert pr.node_id and pr.node_id == repo.pulls[pr.number].node_id


def test_retry_after_everything_was_done_costs_5_requests_was_7(gh):
    """Before: 7 (repository, base ref, branch ref, 2 file reads, head ref, list). After: 5; the
    branch is found through GitHub's 422, nothing is written, the open pull request is reused."""
    first = _open(gh)
    done = len(gh.requests)
    again = _open(gh)
    assert gh.requests[done:] == [
        ("GET", "/repos/acme/app/git/ref/heads/main"),
        ("POST", "/repos/acme/app/git/refs"),
        ("GET", "/repos/acme/app/contents/docs/notes.md"),
        ("GET", "/repos/acme/app/contents/src/new_module.py"),
        ("GET", "/repos/acme/app/pulls"),
    ]
    assert (again.number, again.head_sha, again.created) == (first.number, first.head_sha, False)
    assert again.files_committed == [] and again.node_id == first.node_id
    repo = gh.repos["acme/app"]
    assert sorted(repo.branches) == [BRANCH, "main"] and list(repo.pulls) == [first.number]


def test_retry_with_nothing_committed_and_no_pull_request_reads_the_head_once(gh):
    """An earlier attempt committed everything, then GitHub failed before opening the pull
    request: one head read tells that the branch differs from base, then the PR is opened."""
    gh.fail("POST", r"/pulls$", 502, "Bad Gateway")
    with pytest.raises(RetriableError, match="502"):
        _open(gh)
    done = len(gh.requests)
    pr = _open(gh)
    assert pr.created and pr.files_committed == []
    assert gh.requests[done:][-3:] == [
        ("GET", "/repos/acme/app/pulls"),
        ("GET", f"/repos/acme/app/git/ref/heads/{BRANCH}"),
        ("POST", "/repos/acme/app/pulls"),
    ]


def test_changes_already_on_base_cost_no_request_after_the_file_reads(gh):
    with pytest.raises(TaskRejected, match="already on main in acme/app"):
        _open(gh, changes=[FileWrite("README.md", "hello\n")])
    assert gh.count("POST", r"/pulls$") == 0 and gh.count("PUT", r"/contents/") == 0
    assert len(gh.requests) == 3


def test_verifier_check_costs_one_request_was_2(gh):
    """Before: 2 (repository, pull request). After: 1 (the pull request)."""
    pr = _open(gh)
    done = len(gh.requests)
    client = _resource(gh).client()
    details = {"repo": "acme/app", "number": pr.number, "head_sha": pr.head_sha}
    assert check_pull_request(client, details) is None
    assert gh.requests[done:] == [("GET", f"/repos/acme/app/pulls/{pr.number}")]


def test_lazy_repository_knows_its_full_name_without_a_request(gh):
    repo = repository(_resource(gh).client(), "acme/app")
    assert repo.full_name == "acme/app"
    assert gh.requests == []


def test_first_read_failing_with_5xx_is_retriable(gh):
    gh.fail("GET", r"/git/ref/heads/main$", 500)
    expected = "reading branch main of acme/app: GitHub answered 500"
    with pytest.raises(RetriableError, match=expected):
        _open(gh)


@pytest.mark.parametrize(
    ("repo", "base", "expected"),
    [
        ("acme/missing", "main", "repository acme/missing does not exist"),
        ("acme/app", "develop", "base branch 'develop' does not exist in acme/app"),
    ],
)
def test_a_404_on_the_base_is_told_apart_by_one_repository_read(gh, repo, base, expected):
    with pytest.raises(TaskRejected, match=expected):
        open_pull_request(
            _resource(gh).client(),
            repo_name=repo,
            base=base,
            branch=BRANCH,
            title="t",
            body="b",
            changes=NEW_FILES,
        )
    assert gh.requests == [
        ("GET", f"/repos/{repo}/git/ref/heads/{base}"),
        ("GET", f"/repos/{repo}"),
    ]


def test_equal_settings_share_one_client_and_another_token_gets_its_own(gh):
    assert _resource(gh).client() is _resource(gh).client()
    assert _resource(gh).client() is not _resource(gh, token="another-token").client()


def test_two_tasks_pull_requests_are_paced_as_one_stream_of_writes(gh):
    """Each task builds its own resource, as each run does; the second task's first write still
    waits `seconds_between_writes` after the first task's last one. One opening with one file
    makes 3 writes (branch, file, pull request): the second takes at least 3 intervals, where a
    client of its own would let it start writing at once (2 intervals)."""
    interval = 0.4
    change = [FileWrite("docs/notes.md", "notes\n")]
    _open(gh, "juggernaut/aaaaaaaaaaaa", change, _resource(gh, writes=interval))
    first_done = time.monotonic()
    _open(gh, "juggernaut/bbbbbbbbbbbb", change, _resource(gh, writes=interval))
    assert time.monotonic() - first_done >= 3 * interval - 0.05
    assert len(gh.repos["acme/app"].pulls) == 2

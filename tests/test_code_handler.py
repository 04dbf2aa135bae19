"""The `code` handler against a local GitHub: real PyGithub, real HTTP, real governance DB."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.enums import ArtifactKind, TaskStatus
from juggernaut_assets.db.models import GovernanceTask, PrTracking, ToolCall
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.github_pr import branch_for_task
from juggernaut_assets.execution.handlers.code import GITHUB_NOT_CONFIGURED, run_code_task
from juggernaut_assets.execution.outcome import (
    Artifact,
    NeedsApproval,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.execution.tools.toolbox import ToolBox
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.llm import NO_LLM_CONFIGURED
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks import settle
from juggernaut_assets.tasks.create import add_task
from tests.conftest import platform_resources
from tests.fakes.github_server import FakeGitHub
from tests.queue_driver import drain, task_row

TOKEN = "fake-github-token"
CHANGES = [
    {"path": "README.md", "content": "hello, juggernaut\n"},
    {"path": "src/new_module.py", "content": "VALUE = 42\n"},
]
PAYLOAD = {"repo": "acme/app", "base": "main", "title": "Update readme", "changes": CHANGES}


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as server:
        server.add_repo("acme/app", {"README.md": "hello\n"})
        server.add_repo("acme/other", {"README.md": "other\n"})
        yield server


def _github(
    server: FakeGitHub, token: str | None = TOKEN, repos: tuple[str, ...] = ("acme/app",)
) -> GitHubResource:
    return GitHubResource(
        token=token,
        api_url=server.url,
        allowed_repos=list(repos),
        seconds_between_requests=0,
        seconds_between_writes=0,
    )


def _add(db: GovernanceDB, payload: dict[str, Any], task_type: str = "code") -> str:
    with db.session() as s:
        task, _ = add_task(s, task_type, payload)
    return task.id


def _ctx(db: GovernanceDB, task_id: str, github: GitHubResource, tmp_path: Path) -> TaskContext:
    with db.session() as s:
        payload = s.get(GovernanceTask, task_id).payload
    engine = db.engine
    return TaskContext(
        task_id=task_id,
        task_type="code",
        payload=payload,
        engine=engine,
        artifacts_dir=tmp_path,
        tools=ToolBox(engine, task_id, TaskToolsResource(), tmp_path, httpx.Client()),
        github=github,
        log=None,
    )


def _run(db: GovernanceDB, github: GitHubResource, tmp_path: Path, payload=PAYLOAD):
    task_id = _add(db, payload)
    return task_id, run_code_task(_ctx(db, task_id, github, tmp_path))


def _pr_rows(db: GovernanceDB) -> list[PrTracking]:
    with db.session() as s:
        return s.scalars(sa.select(PrTracking)).all()


def _tool_calls(db: GovernanceDB, task_id: str) -> list[ToolCall]:
    with db.session() as s:
        return s.scalars(sa.select(ToolCall).where(ToolCall.task_id == task_id)).all()


def test_code_task_without_token_is_blocked(governance_db, gh, tmp_path):
    with pytest.raises(TaskBlocked) as err:
        _run(governance_db, _github(gh, token=None), tmp_path)
    assert str(err.value) == GITHUB_NOT_CONFIGURED
    assert gh.requests == []


def test_instruction_only_task_is_blocked_when_no_llm_is_configured(governance_db, gh, tmp_path):
    payload = {"repo": "acme/app", "instruction": "make the readme friendlier"}
    with pytest.raises(TaskBlocked) as err:
        _run(governance_db, _github(gh), tmp_path, payload)
    assert str(err.value) == NO_LLM_CONFIGURED
    assert gh.requests == []


def test_repo_outside_allowlist_needs_approval_naming_the_repo(governance_db, gh, tmp_path):
    payload = {**PAYLOAD, "repo": "acme/other"}
    with pytest.raises(NeedsApproval, match="acme/other"):
        _run(governance_db, _github(gh), tmp_path, payload)
    with pytest.raises(NeedsApproval, match="acme/app"):
        _run(governance_db, _github(gh, repos=()), tmp_path)
    assert gh.requests == []


def test_operator_approval_lets_the_task_use_a_repo_outside_the_allowlist(
    governance_db, gh, tmp_path
):
    task_id = _add(governance_db, {**PAYLOAD, "repo": "acme/other"})
    with governance_db.session() as s:
        s.get(GovernanceTask, task_id).status = TaskStatus.WAITING_APPROVAL.value
    settle.approve(governance_db.engine, task_id, "ops")
    result = run_code_task(_ctx(governance_db, task_id, _github(gh), tmp_path))
    assert result.artifacts[0].details["repo"] == "acme/other"
    assert list(gh.repos["acme/other"].pulls) == [1]


def test_allowlist_matches_case_insensitively_and_by_owner_wildcard():
    resource = GitHubResource(token="t", allowed_repos=["Acme/App", "tools/*"])
    assert resource.allows("acme/app") and resource.allows("tools/anything")
    assert not resource.allows("acme/app2") and not resource.allows("other/app")
    assert not GitHubResource(token="t").allows("acme/app")


def test_happy_path_opens_branch_files_and_pr_and_tracks_it(governance_db, gh, tmp_path):
    github = _github(gh)
    task_id, result = _run(governance_db, github, tmp_path)
    repo, branch = gh.repos["acme/app"], branch_for_task(task_id)
    assert branch == f"juggernaut/{task_id.replace('-', '')[:12]}"
    assert repo.files(branch) == {
        "README.md": b"hello, juggernaut\n",
        "src/new_module.py": b"VALUE = 42\n",
    }
    assert repo.files("main") == {"README.md": b"hello\n"}
    [pull] = repo.pulls.values()
    assert (pull["head"], pull["base"], pull["title"]) == (branch, "main", "Update readme")
    assert task_id in pull["body"]

    assert result.status is TaskStatus.AWAITING_PR_MERGE
    [artifact] = result.artifacts
    assert artifact.kind is ArtifactKind.PULL_REQUEST
    assert artifact.uri == f"{gh.url}/acme/app/pull/1" and artifact.external_id == "1"
    assert artifact.details == {
        "repo": "acme/app",
        "number": 1,
        "branch": branch,
        "head_sha": repo.branches[branch],
        "base": "main",
    }
    assert "opened pull request acme/app#1" in result.summary

    [row] = _pr_rows(governance_db)
    assert (row.repo, row.pr_number, row.pr_url, row.current_state) == (
        "acme/app",
        1,
        artifact.uri,
        "open",
    )
    assert (row.task_id, row.branch, row.head_sha) == (task_id, branch, repo.branches[branch])

    [call] = _tool_calls(governance_db, task_id)
    assert call.success and call.external_id == "acme/app#1"
    assert call.result["files_committed"] == ["README.md", "src/new_module.py"]

    env = VerifyEnv(governance_db.engine, None, github)
    assert verify_artifacts(result.artifacts, env) == [] and artifact.verified


def test_retry_after_a_lost_pr_answer_finds_the_pr_instead_of_opening_another(
    governance_db, gh, tmp_path
):
    github = _github(gh)
    task_id = _add(governance_db, PAYLOAD)
    gh.fail("POST", r"/pulls$", 502, "Bad Gateway", after=True)
    with pytest.raises(RetriableError, match="502"):
        run_code_task(_ctx(governance_db, task_id, github, tmp_path))
    assert len(gh.repos["acme/app"].pulls) == 1 and _pr_rows(governance_db) == []

    result = run_code_task(_ctx(governance_db, task_id, github, tmp_path))
    assert len(gh.repos["acme/app"].pulls) == 1
    assert result.artifacts[0].external_id == "1"
    assert "found the open pull request" in result.summary
    assert gh.count("POST", r"/git/refs$") == 2
    assert sorted(gh.repos["acme/app"].branches) == [branch_for_task(task_id), "main"]
    assert gh.count("PUT", r"/contents/") == len(CHANGES)
    assert [r.pr_number for r in _pr_rows(governance_db)] == [1]
    assert [c.success for c in _tool_calls(governance_db, task_id)] == [False, True]


def test_pr_opened_by_a_racing_attempt_is_found_after_githubs_422(governance_db, gh, tmp_path):
    github = _github(gh)
    task_id = _add(governance_db, PAYLOAD)
    gh.fail("POST", r"/pulls$", 502, "Bad Gateway", after=True)
    with pytest.raises(RetriableError):
        run_code_task(_ctx(governance_db, task_id, github, tmp_path))
    gh.fail("GET", r"/pulls$", 200, body=[])
    result = run_code_task(_ctx(governance_db, task_id, github, tmp_path))
    assert result.artifacts[0].external_id == "1" and len(gh.repos["acme/app"].pulls) == 1
    assert gh.count("POST", r"/pulls$") == 2 and gh.count("GET", r"/pulls$") == 2


def test_retry_after_a_failed_commit_reuses_the_branch_and_commits_only_the_rest(
    governance_db, gh, tmp_path
):
    github = _github(gh)
    task_id = _add(governance_db, PAYLOAD)
    gh.fail("PUT", r"/contents/src/new_module\.py$", 503, "Service Unavailable")
    with pytest.raises(RetriableError, match="503"):
        run_code_task(_ctx(governance_db, task_id, github, tmp_path))
    assert gh.repos["acme/app"].pulls == {}

    first = run_code_task(_ctx(governance_db, task_id, github, tmp_path))
    again = run_code_task(_ctx(governance_db, task_id, github, tmp_path))
    assert first.artifacts[0].details == again.artifacts[0].details
    assert len(gh.repos["acme/app"].pulls) == 1
    assert gh.count("POST", r"/pulls$") == 1
    assert sorted(gh.repos["acme/app"].branches) == [branch_for_task(task_id), "main"]
    assert gh.count("PUT", r"/contents/README\.md$") == 1
    assert len(_pr_rows(governance_db)) == 1


def test_rejected_token_blocks_without_revealing_it(governance_db, gh, tmp_path):
    secret = "rejected-test-token-4711"
    task_id = _add(governance_db, PAYLOAD)
    with pytest.raises(TaskBlocked) as err:
        run_code_task(_ctx(governance_db, task_id, _github(gh, token=secret), tmp_path))
    message = str(err.value)
    assert "401" in message and "GITHUB_TOKEN" in message and secret not in message
    [call] = _tool_calls(governance_db, task_id)
    assert not call.success and secret not in str(call.error_message) + str(call.arguments)


@pytest.mark.parametrize(
    ("status", "message", "outcome"),
    [
        (403, "Resource not accessible by integration", TaskBlocked),
        (403, "API rate limit exceeded for installation", RetriableError),
        (500, "Server Error", RetriableError),
        (422, "path contains a malformed path component", TaskRejected),
    ],
)
def test_github_errors_map_to_task_outcomes(governance_db, gh, tmp_path, status, message, outcome):
    gh.fail("PUT", r"/contents/", status, message)
    with pytest.raises(outcome, match=f"{status}.*{message}") as err:
        _run(governance_db, _github(gh), tmp_path)
    assert type(err.value) is outcome
    assert gh.repos["acme/app"].pulls == {}


def test_server_error_on_base_branch_read_is_retriable(governance_db, gh, tmp_path):
    gh.fail("GET", r"/git/ref/heads/main$", 500)
    with pytest.raises(
        RetriableError, match="reading branch main of acme/app: GitHub answered 500"
    ):
        _run(governance_db, _github(gh), tmp_path)


def test_unreachable_github_is_retriable(governance_db, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    github = GitHubResource(
        token=TOKEN, api_url=f"http://127.0.0.1:{port}", allowed_repos=["acme/app"]
    )
    with pytest.raises(RetriableError, match="did not answer"):
        _run(governance_db, github, tmp_path)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({**PAYLOAD, "repo": "acme/missing"}, "repository acme/missing does not exist"),
        ({**PAYLOAD, "base": "develop"}, "base branch 'develop' does not exist in acme/app"),
    ],
)
def test_missing_repo_or_base_rejects_the_task(governance_db, gh, tmp_path, payload, expected):
    with pytest.raises(TaskRejected, match=expected):
        _run(governance_db, _github(gh, repos=("acme/*",)), tmp_path, payload)


def test_changes_already_on_base_are_rejected_with_the_reason(governance_db, gh, tmp_path):
    payload = {**PAYLOAD, "changes": [{"path": "README.md", "content": "hello\n"}]}
    with pytest.raises(TaskRejected, match="already on main in acme/app"):
        _run(governance_db, _github(gh), tmp_path, payload)
    assert gh.repos["acme/app"].pulls == {}


def test_verifier_rejects_a_pr_that_does_not_exist_or_moved(governance_db, gh, tmp_path):
    github = _github(gh)
    _, result = _run(governance_db, github, tmp_path)
    env = VerifyEnv(governance_db.engine, None, github)
    details = result.artifacts[0].details
    ghost = Artifact(ArtifactKind.PULL_REQUEST, details={**details, "number": 999})
    [problem] = verify_artifacts([ghost], env)
    assert "acme/app#999 does not exist" in problem and not ghost.verified

    repo = gh.repos["acme/app"]
    branch = details["branch"]
    repo.commit(branch, {**repo.files(branch), "extra.txt": b"pushed by someone else\n"})
    moved = Artifact(ArtifactKind.PULL_REQUEST, details=details)
    [problem] = verify_artifacts([moved], env)
    assert "head of acme/app#1" in problem and "expected" in problem

    unconfigured = VerifyEnv(governance_db.engine, None, GitHubResource())
    [problem] = verify_artifacts(
        [Artifact(ArtifactKind.PULL_REQUEST, details=details)], unconfigured
    )
    assert "no GitHub access" in problem


def test_code_fix_task_through_the_executor_awaits_merge_with_verified_pr(
    governance_db, db_url, gh, instance
):
    resources = platform_resources(db_url, github=_github(gh))
    task_id = _add(governance_db, PAYLOAD, task_type="code_fix")
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("awaiting_pr_merge", "verified")
    assert f"{gh.url}/acme/app/pull/1" in row.completion_evidence
    assert row.completed_at is None
    assert [r.task_id for r in _pr_rows(governance_db)] == [task_id]


def test_pr_tracked_for_another_task_is_not_taken_over(governance_db, gh, tmp_path):
    other = _add(governance_db, PAYLOAD)
    with governance_db.session() as s:
        s.add(PrTracking(task_id=other, repo="acme/app", pr_number=1, current_state="open"))
    with pytest.raises(TaskRejected, match=f"acme/app#1 is tracked for task {other}"):
        _run(governance_db, _github(gh), tmp_path)
    assert [r.task_id for r in _pr_rows(governance_db)] == [other]

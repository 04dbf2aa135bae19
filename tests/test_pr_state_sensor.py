"""`pr_state_sensor` and its runs against a local GitHub: real GraphQL, real PyGithub, real
governance database (SQLite and PostgreSQL). Every scenario starts from a code task carried
by the real executor to `awaiting_pr_merge`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.db.models import PrTracking, TaskArtifact, ToolCall
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.tasks.create import add_task
from tests.conftest import platform_resources
from tests.fakes.github_server import FakeGitHub
from tests.pr_driver import PrDriver
from tests.queue_driver import drain, task_row

TOKEN = "fake-github-token"
REPO = "acme/app"


@dataclass
class World:
    gh: FakeGitHub
    db_url: str
    instance: dg.DagsterInstance
    resources: dict[str, Any]
    driver: PrDriver

    def github(self, **changes: Any) -> None:
        self.resources["github"] = github_resource(self.gh, **changes)

    def open_pr_task(self, path: str = "src/feature.py", depends: str | None = None) -> Pr:
        db = GovernanceDB(url=self.db_url)
        payload = {
            "repo": REPO,
            "base": "main",
            "title": f"Add {path}",
            "changes": [{"path": path, "content": f"# {path}\n"}],
        }
        with db.session() as s:
            task, _ = add_task(s, "code", payload)
            task_id = task.id
        drain(self.instance, self.resources)
        row = task_row(self.db_url, task_id)
        assert row.status == TaskStatus.AWAITING_PR_MERGE.value, row.error_message
        with make_engine(self.db_url).connect() as conn:
            tracking = conn.execute(
                sa.select(PrTracking.pr_number, PrTracking.head_sha, PrTracking.node_id).where(
                    PrTracking.task_id == task_id
                )
            ).one()
        assert tracking.node_id, "the PR's node id is stored for nodes(ids:)"
        return Pr(task_id, tracking.pr_number, tracking.head_sha)

    def passing(self, pr: Pr, *names: str) -> None:
        for name in names or ("ci",):
            self.gh.add_check(REPO, self.head(pr), name, status="completed", conclusion="success")

    def head(self, pr: Pr) -> str:
        return self.gh.head_sha(REPO, pr.number)

    def task(self, pr: Pr) -> sa.Row:
        return task_row(self.db_url, pr.task_id)

    def artifacts(self, pr: Pr) -> list[sa.Row]:
        with make_engine(self.db_url).connect() as conn:
            return conn.execute(
                sa.select(TaskArtifact.kind, TaskArtifact.uri, TaskArtifact.verified).where(
                    TaskArtifact.task_id == pr.task_id
                )
            ).all()

    def calls(self, tool: str) -> list[sa.Row]:
        with make_engine(self.db_url).connect() as conn:
            return conn.execute(
                sa.select(ToolCall.success, ToolCall.error_message, ToolCall.result).where(
                    ToolCall.tool_name == tool
                )
            ).all()

    def merges(self) -> int:
        return self.gh.count("PUT", r"/pulls/\d+/merge$")


@dataclass(frozen=True)
class Pr:
    task_id: str
    number: int
    head_sha: str


def github_resource(gh: FakeGitHub, **changes: Any) -> GitHubResource:
    settings: dict[str, Any] = {
        "token": TOKEN,
        "api_url": gh.url,
        "allowed_repos": [REPO],
        "automerge_repos": [REPO],
        "seconds_between_requests": 0,
        "seconds_between_writes": 0,
    }
    return GitHubResource(**{**settings, **changes})


@pytest.fixture
def world(db_url: str, instance: dg.DagsterInstance) -> Iterator[World]:
    with FakeGitHub(TOKEN) as gh:
        gh.add_repo(REPO, {"README.md": "hello\n"})
        resources = platform_resources(db_url, github=github_resource(gh))
        yield World(gh, db_url, instance, resources, PrDriver(instance, resources))


def test_pull_request_merged_on_github_completes_its_task_with_a_verified_merge_commit(world):
    pr = world.open_pr_task()
    db = GovernanceDB(url=world.db_url)
    with db.session() as s:
        dependent, _ = add_task(s, "analysis", {"sql": "SELECT 1 AS one"})
        dependent.depends_on = [pr.task_id]
        dependent_id = dependent.id
    drain(world.instance, world.resources)
    assert task_row(world.db_url, dependent_id).status == TaskStatus.PENDING.value

    world.gh.merge_externally(REPO, pr.number, "alice")
    tick = world.driver.tick()
    assert tick.actions == ["settle_merged"]
    row = world.task(pr)
    assert row.status == TaskStatus.COMPLETED.value
    sha = world.gh.pull(REPO, pr.number).merge_commit_sha
    assert f"{REPO}#{pr.number}" in row.completion_evidence and sha[:12] in row.completion_evidence
    kinds = {a.kind: a for a in world.artifacts(pr)}
    assert kinds["merge_commit"].verified and sha in kinds["merge_commit"].uri
    assert world.calls("github_verify_merge")[0].success

    [run] = tick.runs
    [event] = [
        e.event_specific_data.materialization
        for e in run.all_events
        if e.event_type is dg.DagsterEventType.ASSET_MATERIALIZATION
    ]
    links = {k: v.value for k, v in event.metadata.items() if k.startswith("artifact_")}
    assert any(sha in str(v) for v in links.values())
    assert any(f"/pull/{pr.number}" in str(v) for v in links.values())

    drain(world.instance, world.resources)
    assert task_row(world.db_url, dependent_id).status == TaskStatus.COMPLETED.value


def test_merge_commit_that_is_not_on_the_base_branch_is_not_accepted(world):
    pr = world.open_pr_task()
    repo = world.gh.repos[REPO]
    before = repo.branches["main"]
    world.gh.merge_externally(REPO, pr.number, "alice")
    repo.branches["main"] = before  # the base was force-pushed back: the merge is not on it
    world.driver.tick()
    row = world.task(pr)
    assert row.status == TaskStatus.AWAITING_PR_MERGE.value
    assert "did not verify" in row.error_message


def test_closed_pull_request_fails_its_task_saying_who_closed_it(world):
    pr = world.open_pr_task()
    world.gh.close(REPO, pr.number, "bob")
    world.driver.tick()
    row = world.task(pr)
    assert row.status == TaskStatus.FAILED.value
    assert f"{REPO}#{pr.number} was closed without merge by @bob at" in row.error_message


def test_conflict_blocks_the_task_and_its_resolution_returns_it_to_waiting(world):
    pr = world.open_pr_task("README.md")
    world.gh.advance_base(REPO, {"README.md": "theirs\n"})
    world.driver.tick()
    row = world.task(pr)
    assert row.status == TaskStatus.BLOCKED.value
    assert row.error_message.startswith("merge conflict with main")
    assert world.driver.tick().actions == []

    world.gh.push(REPO, world.gh.pull(REPO, pr.number).head, {"README.md": "theirs\n"})
    assert world.driver.tick().actions == ["unblock"]
    assert world.task(pr).status == TaskStatus.AWAITING_PR_MERGE.value


def test_branch_behind_a_strict_base_is_updated_once_per_head_then_merged(world):
    world.gh.repos[REPO].strict = True
    pr = world.open_pr_task()
    world.passing(pr)
    world.gh.advance_base(REPO, {"OTHER.md": "someone else's change\n"})
    assert world.driver.tick().actions == ["update_branch"]
    assert world.gh.count("PUT", r"/update-branch$") == 1
    new_head = world.head(pr)
    assert new_head != pr.head_sha

    tick = world.driver.tick()
    assert "merge" not in tick.actions, "no checks on the updated head yet"
    world.passing(pr)
    world.driver.tick()
    assert world.task(pr).status == TaskStatus.COMPLETED.value
    assert world.gh.count("PUT", r"/update-branch$") == 1


def test_clean_approved_pull_request_is_merged_with_the_checked_head(world):
    world.gh.repos[REPO].reviews_required = True
    pr = world.open_pr_task()
    world.passing(pr, "ci", "lint")
    tick = world.driver.tick()
    assert tick.actions == [] and "awaiting review" in tick.skip_reason
    world.gh.approve(REPO, pr.number, "carol")
    assert world.driver.tick().actions == ["merge"]
    assert world.merges() == 1
    [body] = [b for m, p, b in world.gh.bodies if m == "PUT" and p.endswith("/merge")]
    assert body["sha"] == pr.head_sha and body["merge_method"] == "squash"
    assert world.task(pr).status == TaskStatus.COMPLETED.value
    [call] = world.calls("github_merge")
    assert call.success


def test_failing_checks_are_never_merged_and_are_named_on_the_task(world):
    pr = world.open_pr_task()
    world.passing(pr, "lint")
    world.gh.add_check(REPO, pr.head_sha, "unit", status="completed", conclusion="failure")
    tick = world.driver.tick()
    assert tick.actions == [] and "checks failing" in tick.skip_reason
    assert world.merges() == 0
    row = world.task(pr)
    assert row.status == TaskStatus.AWAITING_PR_MERGE.value
    assert "checks failing" in row.error_message and "unit" in row.error_message


def test_pull_request_without_checks_is_never_merged(world):
    pr = world.open_pr_task()
    tick = world.driver.tick()
    assert tick.actions == [] and "no checks" in tick.skip_reason
    assert world.merges() == 0 and world.task(pr).status == TaskStatus.AWAITING_PR_MERGE.value


def test_push_after_the_checks_is_never_merged(world):
    pr = world.open_pr_task()
    world.passing(pr)
    tick = world.driver.evaluate()
    assert tick.actions == ["merge"]
    world.gh.push(REPO, world.gh.pull(REPO, pr.number).head, {"late.py": "x = 1\n"})
    for request in tick.requests:
        world.driver.run(request)
    assert world.merges() == 1, "the merge was asked with the checked sha"
    assert world.gh.pull(REPO, pr.number).state == "open"
    assert world.task(pr).status == TaskStatus.AWAITING_PR_MERGE.value
    assert world.driver.tick().actions == [], "the new head has no checks"
    assert world.merges() == 1


def test_merge_whose_answer_is_lost_is_not_repeated(world):
    pr = world.open_pr_task()
    world.passing(pr)
    world.gh.fail("PUT", r"/merge$", 502, "Bad Gateway", after=True)
    world.driver.tick()
    assert world.merges() == 1
    assert "unconfirmed" in world.task(pr).error_message
    tick = world.driver.tick()
    assert tick.actions == ["settle_merged"]
    assert world.merges() == 1
    assert world.task(pr).status == TaskStatus.COMPLETED.value


def test_tick_evaluated_twice_acts_once(world):
    pr = world.open_pr_task()
    world.passing(pr)
    first, second = world.driver.evaluate(), world.driver.evaluate()
    assert first.requests[0].run_key == second.requests[0].run_key
    for request in first.requests + second.requests:
        world.driver.run(request)
    assert world.merges() == 1
    with make_engine(world.db_url).connect() as conn:
        events = conn.execute(
            sa.select(sa.func.count())
            .select_from(ToolCall)
            .where(ToolCall.tool_name == "github_merge")
        ).scalar_one()
    assert events == 1


def test_repository_outside_the_automerge_list_is_followed_never_merged(world):
    world.github(automerge_repos=[])
    pr = world.open_pr_task()
    world.passing(pr)
    tick = world.driver.tick()
    assert tick.actions == [] and world.merges() == 0
    assert "JUGGERNAUT_AUTOMERGE_REPOS" in world.task(pr).error_message
    with make_engine(world.db_url).connect() as conn:
        row = conn.execute(sa.select(PrTracking)).one()
    assert (row.current_state, row.merge_state, row.checks_state) == ("open", "clean", "success")
    assert row.head_sha == pr.head_sha and row.last_polled_at is not None


def test_pull_request_without_progress_past_the_max_age_fails_its_task(world):
    world.github(pr_max_age_hours=1e-9)
    pr = world.open_pr_task()
    world.driver.tick()
    world.driver.tick()
    row = world.task(pr)
    assert row.status == TaskStatus.FAILED.value
    assert "made no progress" in row.error_message


def test_secondary_rate_limit_is_honoured(world):
    pr = world.open_pr_task()
    world.gh.fail(
        "POST",
        r"/graphql$",
        403,
        "You have exceeded a secondary rate limit",
        headers={"Retry-After": "60"},
    )
    tick = world.driver.tick()
    assert "retry after 60 s" in tick.skip_reason
    before = world.gh.graphql_count
    tick = world.driver.tick()
    assert world.gh.graphql_count == before, "no request while GitHub asked to wait"
    assert "asked to wait" in tick.skip_reason
    assert world.task(pr).status == TaskStatus.AWAITING_PR_MERGE.value


def test_low_graphql_budget_stops_before_running_out(world):
    world.open_pr_task()
    world.gh.graphql_remaining = 150
    world.driver.tick()
    before = world.gh.graphql_count
    tick = world.driver.tick()
    assert world.gh.graphql_count == before
    assert "budget low" in tick.skip_reason


def test_many_pull_requests_are_read_in_one_request_and_summarised(world):
    prs = [world.open_pr_task(f"src/f{i}.py") for i in range(3)]
    world.passing(prs[0])
    world.github(automerge_repos=[])
    before = world.gh.graphql_count
    first = world.driver.tick()
    assert world.gh.graphql_count == before + 1
    assert first.skip_reason.startswith("3 open PR(s) in 1 repo(s)")
    second = world.driver.tick()
    assert "3 unchanged" in second.skip_reason, second.skip_reason


def test_graphql_answer_larger_than_the_cap_is_refused(world):
    pr = world.open_pr_task()
    world.github(graphql_max_response_bytes=200)
    tick = world.driver.tick()
    assert "larger than 200 bytes" in tick.skip_reason and tick.actions == []
    assert world.task(pr).status == TaskStatus.AWAITING_PR_MERGE.value


def test_pull_request_github_no_longer_knows_is_marked_and_left_waiting(world):
    pr = world.open_pr_task()
    with make_engine(world.db_url).begin() as conn:
        conn.execute(sa.update(PrTracking).values(node_id=None, pr_number=999))
    tick = world.driver.tick()
    assert "1 not answered by GitHub" in tick.skip_reason and tick.actions == []
    with make_engine(world.db_url).connect() as conn:
        metadata = conn.execute(sa.select(sa.cast(PrTracking.metadata_, sa.Text))).scalar_one()
    assert "no pull request" in json.loads(metadata)["juggernaut"]["missing"]
    assert world.task(pr).status == TaskStatus.AWAITING_PR_MERGE.value


def test_sensor_without_token_says_so(world):
    world.open_pr_task()
    world.github(token=None)
    tick = world.driver.tick()
    assert "GITHUB_TOKEN is not configured: 1 open pull request(s) not followed" in tick.skip_reason


def test_tracked_state_written_for_every_field(world):
    pr = world.open_pr_task()
    world.passing(pr)
    world.github(automerge_repos=[])
    world.driver.tick()
    with make_engine(world.db_url).connect() as conn:
        row = conn.execute(
            sa.select(
                PrTracking.current_state,
                PrTracking.review_status,
                PrTracking.mergeable,
                PrTracking.merge_state,
                PrTracking.checks_state,
                sa.cast(PrTracking.metadata_, sa.Text).label("metadata"),
            )
        ).one()
    assert tuple(row[:5]) == ("open", "none", True, "clean", "success")
    assert json.loads(row.metadata)["juggernaut"]["progress_at"]

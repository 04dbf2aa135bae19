"""A generated change from the model's answer to a merged pull request and a completed task,
and its dependent task then running: the real executor, the real `pr_state_sensor`, a local
GitHub and a local chat-completions server (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.enums import TaskStatus
from juggernaut_assets.db.models import TaskArtifact
from juggernaut_assets.execution import pr_store
from juggernaut_assets.execution.pr_actions import PrAction, PrEnv, carry_out
from juggernaut_assets.lib.merge_policy import Action
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.llm import LlmResource
from juggernaut_assets.tasks.create import add_task
from tests.conftest import platform_resources
from tests.fakes.chat_server import FakeChat
from tests.fakes.github_server import FakeGitHub
from tests.pr_driver import PrDriver
from tests.queue_driver import drain, evaluate_sensor, task_row

TOKEN = "fake-github-token"
KEY = "fake-llm-key-for-merge-tests"
REPO = "acme/app"
GREETING = 'def greet():\n    return "hi"\n'
ANSWER = (
    "greet() takes a name now.\n\n"
    "src/app/greeting.py\n<<<<<<< SEARCH\n"
    'def greet():\n    return "hi"\n=======\n'
    'def greet(name: str) -> str:\n    return f"hi {name}"\n>>>>>>> REPLACE\n'
)
GREETED = 'def greet(name: str) -> str:\n    return f"hi {name}"\n'


@pytest.fixture
def servers() -> Iterator[tuple[FakeGitHub, FakeChat]]:
    with FakeGitHub(TOKEN) as gh, FakeChat(KEY) as chat:
        gh.add_repo(REPO, {"src/app/greeting.py": GREETING}, reviews_required=True)
        yield gh, chat


def _resources(db_url: str, gh: FakeGitHub, chat: FakeChat) -> dict:
    github = GitHubResource(
        token=TOKEN,
        api_url=gh.url,
        allowed_repos=[REPO],
        automerge_repos=[REPO],
        seconds_between_requests=0,
        seconds_between_writes=0,
    )
    llm = LlmResource(api_url=chat.api_url, api_key=KEY, model="m/one", backoff_seconds=0.0)
    return platform_resources(db_url, github=github, llm=llm)


def test_instruction_task_is_generated_merged_and_completed_then_its_dependent_runs(
    db_url: str, instance: dg.DagsterInstance, servers: tuple[FakeGitHub, FakeChat]
) -> None:
    gh, chat = servers
    chat.answer(ANSWER)
    resources = _resources(db_url, gh, chat)
    db = GovernanceDB(url=db_url)
    payload = {
        "repo": REPO,
        "instruction": "Make greet() take a name and greet that name",
        "paths": ["src/app/greeting.py"],
    }
    with db.session() as s:
        code, _ = add_task(s, "code_change", payload)
        report, _ = add_task(s, "analysis", {"sql": "SELECT 1 AS merged"})
        report.depends_on = [code.id]
        code_id, report_id = code.id, report.id

    drain(instance, resources)
    assert task_row(db_url, code_id).status == TaskStatus.AWAITING_PR_MERGE.value
    assert task_row(db_url, report_id).status == TaskStatus.PENDING.value
    [pull] = [gh.pull(REPO, n) for n in gh.repos[REPO].pulls]
    assert gh.repos[REPO].files(pull.head)["src/app/greeting.py"] == GREETED.encode()
    assert "Make greet() take a name" in pull.body

    driver = PrDriver(instance, resources)
    head = gh.head_sha(REPO, pull.number)
    gh.add_check(REPO, head, "ci", conclusion="success")
    tick = driver.tick()
    assert tick.actions == [] and "awaiting review" in tick.skip_reason
    assert gh.repos[REPO].files("main")["src/app/greeting.py"] == GREETING.encode()

    gh.approve(REPO, pull.number, "reviewer")
    assert driver.tick().actions == ["merge"]
    row = task_row(db_url, code_id)
    assert row.status == TaskStatus.COMPLETED.value, row.error_message
    assert gh.repos[REPO].files("main")["src/app/greeting.py"] == GREETED.encode()
    with make_engine(db_url).connect() as conn:
        kinds = sorted(
            conn.execute(
                sa.select(TaskArtifact.kind).where(
                    TaskArtifact.task_id == code_id, TaskArtifact.verified.is_(True)
                )
            ).scalars()
        )
    assert {"llm_exchange", "merge_commit", "pull_request"} <= set(kinds)

    drain(instance, resources)
    assert task_row(db_url, report_id).status == TaskStatus.COMPLETED.value


def test_settled_task_whose_run_died_before_its_event_is_reported_by_the_queue_sensor(
    db_url: str, instance: dg.DagsterInstance, servers: tuple[FakeGitHub, FakeChat]
) -> None:
    gh, chat = servers
    resources = _resources(db_url, gh, chat)
    db = GovernanceDB(url=db_url)
    payload = {
        "repo": REPO,
        "base": "main",
        "changes": [{"path": "NOTES.md", "content": "notes\n"}],
    }
    with db.session() as s:
        task, _ = add_task(s, "code", payload)
        task_id = task.id
    drain(instance, resources)
    gh.close(REPO, 1, "bob")
    driver = PrDriver(instance, resources)
    [request] = driver.evaluate().requests
    [config] = request.run_config["ops"]["act_on_pull_requests"]["config"]["actions"]
    engine = make_engine(db_url)
    env = PrEnv(engine, resources["github"], "dagster-run:vanished-run", None)
    action = PrAction(
        config["tracking_id"],
        Action(config["action"]),
        config["head_sha"],
        config["reason"],
        config["version"],
    )
    result = carry_out(env, action)  # the run settles the task, then dies before its event
    assert result.outcome is not None
    assert task_row(db_url, task_id).status == TaskStatus.FAILED.value

    reported = evaluate_sensor(instance, resources)
    assert [e.partition for e in reported.asset_events or []] == [task_id]
    assert pr_store.unsettled_pull_requests(engine) == []

"""Generated changes: instruction → model → exact edits → pull request, against local servers.

The real PyGithub client talks to the local GitHub, the real httpx client to the local
chat-completions server; the governance database is SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.enums import ArtifactKind, TaskStatus
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact, ToolCall, new_id, utcnow
from juggernaut_assets.execution.codegen import MAX_ROUNDS, SYSTEM_PROMPT, spent_today
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.github_pr import branch_for_task
from juggernaut_assets.execution.handlers.code import run_code_task
from juggernaut_assets.execution.outcome import Artifact, RetriableError, TaskBlocked, TaskRejected
from juggernaut_assets.execution.repo_files import (
    MAX_SEARCH_FILES,
    TreeFile,
    relevant_files,
)
from juggernaut_assets.execution.tools.toolbox import ToolBox
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.llm import NO_LLM_CONFIGURED, LlmResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.create import add_task
from tests.conftest import platform_resources
from tests.fakes.chat_server import FakeChat
from tests.fakes.github_server import FakeGitHub
from tests.queue_driver import drain, task_row

TOKEN = "fake-github-token"
KEY = "fake-llm-key-for-tests-8675309"
GREETING = 'def greet():\n    return "hi"\n'
FILES = {
    "README.md": "# App\n\nSays hi.\n",
    "src/app/greeting.py": GREETING,
    "docs/setup.md": "Install it with pip.\n",
    "node_modules/greeting/index.js": "module.exports = 'hi'\n",
}
INSTRUCTION = "Make greet() take a name and greet that name"
PAYLOAD = {"repo": "acme/app", "instruction": INSTRUCTION, "paths": ["src/app/greeting.py"]}
GOOD = (
    "greet() now takes the name to greet.\n\n"
    "src/app/greeting.py\n```python\n<<<<<<< SEARCH\n"
    'def greet():\n    return "hi"\n=======\n'
    'def greet(name: str) -> str:\n    return f"hi {name}"\n>>>>>>> REPLACE\n```\n'
)
GREETED = 'def greet(name: str) -> str:\n    return f"hi {name}"\n'
UNMATCHED = (
    "src/app/greeting.py\n<<<<<<< SEARCH\ndef greet( ):\n=======\ndef greet(name):\n"
    ">>>>>>> REPLACE\n"
)
README_BLOCK = (
    "README.md\n<<<<<<< SEARCH\nSays hi.\n=======\nSays hi to anyone by name.\n>>>>>>> REPLACE\n"
)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as server:
        server.add_repo("acme/app", FILES)
        yield server


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    with FakeChat(KEY) as server:
        yield server


def _github(server: FakeGitHub) -> GitHubResource:
    return GitHubResource(
        token=TOKEN,
        api_url=server.url,
        allowed_repos=["acme/app"],
        seconds_between_requests=0,
        seconds_between_writes=0,
    )


def _llm(server: FakeChat, **overrides: Any) -> LlmResource:
    settings: dict[str, Any] = {
        "api_url": server.api_url,
        "api_key": KEY,
        "model": "m/one",
        "backoff_seconds": 0.0,
    }
    return LlmResource(**(settings | overrides))


def _add(db: GovernanceDB, payload: dict[str, Any]) -> str:
    with db.session() as s:
        task, _ = add_task(s, "code", payload)
    return task.id


def _ctx(
    db: GovernanceDB,
    task_id: str,
    gh: FakeGitHub,
    llm: LlmResource | None,
    tmp_path: Path,
) -> TaskContext:
    with db.session() as s:
        payload = s.get(GovernanceTask, task_id).payload
    return TaskContext(
        task_id=task_id,
        task_type="code",
        payload=payload,
        engine=db.engine,
        artifacts_dir=tmp_path / "artifacts",
        tools=ToolBox(db.engine, task_id, TaskToolsResource(), tmp_path, httpx.Client()),
        github=_github(gh),
        log=None,
        llm=llm,
    )


def _run(db, gh, llm, tmp_path, payload=PAYLOAD):
    task_id = _add(db, payload)
    return task_id, run_code_task(_ctx(db, task_id, gh, llm, tmp_path))


def _calls(db: GovernanceDB, task_id: str, tool: str = "llm") -> list[ToolCall]:
    with db.session() as s:
        rows = s.scalars(
            sa.select(ToolCall).where(ToolCall.task_id == task_id, ToolCall.tool_name == tool)
        ).all()
    return sorted(rows, key=lambda r: r.started_at)


def test_instruction_becomes_a_pull_request_with_the_models_edits(
    governance_db, gh, chat, tmp_path
):
    chat.answer(GOOD)
    llm = _llm(chat)
    task_id, result = _run(governance_db, gh, llm, tmp_path)

    repo, branch = gh.repos["acme/app"], branch_for_task(task_id)
    assert repo.files(branch)["src/app/greeting.py"] == GREETED.encode()
    assert repo.files("main")["src/app/greeting.py"] == GREETING.encode()
    [pull] = repo.pulls.values()
    assert pull.title == INSTRUCTION
    assert f"> {INSTRUCTION}" in pull.body and "Model: `fake/model-1` (1 round)" in pull.body
    assert "`src/app/greeting.py`" in pull.body
    assert "The model's summary:\n\n> greet() now takes the name to greet.\n\n" in pull.body
    assert "> src/app/greeting.py" not in pull.body

    assert result.status is TaskStatus.AWAITING_PR_MERGE
    pr, exchange = result.artifacts
    assert (pr.kind, exchange.kind) == (ArtifactKind.PULL_REQUEST, ArtifactKind.LLM_EXCHANGE)
    assert "written by fake/model-1 in 1 round(s)" in result.summary
    assert Path(exchange.uri).read_text() == GOOD
    prompt = Path(exchange.details["prompt_path"]).read_text()
    assert '"model": "m/one"' in prompt and "src/app/greeting.py" in prompt

    [request] = chat.requests
    system, user = request.messages
    assert (system["role"], system["content"]) == ("system", SYSTEM_PROMPT)
    assert INSTRUCTION in user["content"]
    assert f"src/app/greeting.py\n```\n{GREETING}```" in user["content"]
    assert request.body["model"] == "m/one" and request.body["temperature"] == 0.0

    [call] = _calls(governance_db, task_id)
    assert call.success and call.external_id == "gen-1" and call.duration_ms is not None
    assert {k: call.arguments[k] for k in ("model", "round", "paths")} == {
        "model": "m/one",
        "round": 1,
        "paths": ["src/app/greeting.py"],
    }
    assert call.result["finish_reason"] == "stop"
    assert call.result["prompt_tokens"] > 0 and call.result["completion_tokens"] > 0
    assert call.result["cost_usd"] > 0 and call.result["cost_source"] == "reported"
    assert call.result["counted_cost_usd"] == call.result["cost_usd"]
    assert exchange.external_id == call.id

    env = VerifyEnv(governance_db.engine, None, _github(gh))
    assert verify_artifacts(result.artifacts, env) == []
    assert pr.verified and exchange.verified


def test_tree_search_shows_the_files_the_instruction_points_at(governance_db, gh, chat, tmp_path):
    chat.answer(GOOD)
    payload = {"repo": "acme/app", "instruction": "Change the greeting so greet takes a name"}
    task_id, result = _run(governance_db, gh, _llm(chat), tmp_path, payload)
    user = chat.requests[0].messages[1]["content"]
    assert f"src/app/greeting.py\n```\n{GREETING}```" in user
    other = user.split("Other files in the repository (names only):")[1]
    assert "README.md" in other and "docs/setup.md" in other
    assert "node_modules" not in user and "Install it with pip." not in user
    assert gh.count("GET", r"/git/trees/") == 1
    assert gh.repos["acme/app"].files(branch_for_task(task_id))["src/app/greeting.py"] == (
        GREETED.encode()
    )
    assert result.status is TaskStatus.AWAITING_PR_MERGE


def test_unmatched_block_is_sent_back_and_the_corrected_answer_applies(
    governance_db, gh, chat, tmp_path
):
    chat.answer(README_BLOCK + "\n" + UNMATCHED).answer(GOOD)
    payload = {**PAYLOAD, "paths": ["README.md", "src/app/greeting.py"]}
    task_id, result = _run(governance_db, gh, _llm(chat), tmp_path, payload)

    first, second = chat.requests
    reflection = second.last_user
    assert "1 of your blocks did not apply and changed nothing:" in reflection
    assert "the SEARCH lines do not occur in src/app/greeting.py" in reflection
    assert "def greet( ):" in reflection
    assert "The other 1 block(s) applied: do not send them again." in reflection
    assert second.messages[: len(first.messages)] == first.messages
    assert second.messages[len(first.messages)]["role"] == "assistant"

    files = gh.repos["acme/app"].files(branch_for_task(task_id))
    assert files["README.md"] == b"# App\n\nSays hi to anyone by name.\n"
    assert files["src/app/greeting.py"] == GREETED.encode()
    assert [c.arguments["round"] for c in _calls(governance_db, task_id)] == [1, 2]
    kinds = [a.kind for a in result.artifacts]
    assert kinds == [
        ArtifactKind.PULL_REQUEST,
        ArtifactKind.LLM_EXCHANGE,
        ArtifactKind.LLM_EXCHANGE,
    ]
    assert "Model: `fake/model-1` (2 rounds)" in gh.repos["acme/app"].pulls[1].body


def test_blocks_still_unmatched_after_three_rounds_fail_the_task_naming_them(
    governance_db, gh, chat, tmp_path
):
    for _ in range(MAX_ROUNDS):
        chat.answer(UNMATCHED)
    task_id = _add(governance_db, PAYLOAD)
    with pytest.raises(TaskRejected) as err:
        run_code_task(_ctx(governance_db, task_id, gh, _llm(chat), tmp_path))
    message = str(err.value)
    assert f"no applicable edits in {MAX_ROUNDS} rounds" in message
    assert 'src/app/greeting.py (SEARCH "def greet( ):")' in message
    assert "do not occur in src/app/greeting.py" in message
    assert len(chat.requests) == MAX_ROUNDS
    assert len(_calls(governance_db, task_id)) == MAX_ROUNDS
    repo = gh.repos["acme/app"]
    assert repo.pulls == {} and branch_for_task(task_id) not in repo.branches


def test_a_malformed_answer_is_sent_back_with_the_reason(governance_db, gh, chat, tmp_path):
    chat.answer("src/app/greeting.py\n<<<<<<< SEARCH\ndef greet():\n", finish_reason="length")
    chat.answer(GOOD)
    task_id, result = _run(governance_db, gh, _llm(chat), tmp_path)
    reflection = chat.requests[1].last_user
    assert "is unterminated" in reflection and "cut off at the token limit" in reflection
    assert [c.result["finish_reason"] for c in _calls(governance_db, task_id)] == ["length", "stop"]
    assert result.status is TaskStatus.AWAITING_PR_MERGE


def test_answers_malformed_every_round_fail_with_the_reason(governance_db, gh, chat, tmp_path):
    for _ in range(MAX_ROUNDS):
        chat.answer("I cannot find the file.")
    with pytest.raises(TaskRejected, match="holds no edit blocks"):
        _run(governance_db, gh, _llm(chat), tmp_path)
    assert gh.repos["acme/app"].pulls == {}


def test_a_named_file_that_does_not_exist_is_created_with_a_new_file_block(
    governance_db, gh, chat, tmp_path
):
    chat.answer("docs/usage.md\n<<<<<<< NEW FILE\n# Usage\n\nCall greet(name).\n>>>>>>> NEW FILE\n")
    payload = {**PAYLOAD, "instruction": "Document usage", "paths": ["docs/usage.md"]}
    task_id, _ = _run(governance_db, gh, _llm(chat), tmp_path, payload)
    user = chat.requests[0].messages[1]["content"]
    assert "These files do not exist yet" in user and "- docs/usage.md" in user
    files = gh.repos["acme/app"].files(branch_for_task(task_id))
    assert files["docs/usage.md"] == b"# Usage\n\nCall greet(name).\n"


def test_edits_that_change_nothing_are_rejected(governance_db, gh, chat, tmp_path):
    same = "src/app/greeting.py\n<<<<<<< SEARCH\ndef greet():\n=======\ndef greet():\n"
    same += ">>>>>>> REPLACE\n"
    chat.answer(same)
    with pytest.raises(TaskRejected, match="change nothing in acme/app"):
        _run(governance_db, gh, _llm(chat), tmp_path)
    assert gh.repos["acme/app"].pulls == {}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({**PAYLOAD, "paths": ["../secrets.txt"]}, "'../secrets.txt' is refused: the path leaves"),
        ({**PAYLOAD, "paths": [".git/config"]}, "'.git/config' is refused: the path is inside"),
        (
            {"repo": "acme/app", "base": "develop", "instruction": INSTRUCTION},
            "base branch 'develop' does not exist in acme/app",
        ),
    ],
)
def test_unusable_paths_or_base_reject_the_task_before_the_model_is_asked(
    governance_db, gh, chat, tmp_path, payload, expected
):
    with pytest.raises(TaskRejected, match=re.escape(expected)):
        _run(governance_db, gh, _llm(chat), tmp_path, payload)
    assert chat.requests == []


@pytest.mark.parametrize("configured", [False, True])
def test_without_a_key_generation_is_blocked_before_anything_is_called(
    governance_db, gh, chat, tmp_path, configured
):
    llm = _llm(chat, api_key=None) if configured else None
    with pytest.raises(TaskBlocked) as err:
        _run(governance_db, gh, llm, tmp_path)
    assert str(err.value) == NO_LLM_CONFIGURED
    assert gh.requests == [] and chat.requests == []


def _record_spend(db: GovernanceDB, cost: float, when=None) -> None:
    with db.session() as s:
        s.add(
            ToolCall(
                id=new_id(),
                task_id=None,
                tool_name="llm",
                arguments={"model": "m/one"},
                success=True,
                result={"counted_cost_usd": cost},
                started_at=when or utcnow(),
            )
        )


def test_a_spent_daily_budget_blocks_before_the_model_is_called(governance_db, gh, chat, tmp_path):
    _record_spend(governance_db, 0.75)
    _record_spend(governance_db, 0.25)
    _record_spend(governance_db, 50.0, utcnow() - timedelta(days=1, hours=1))
    with pytest.raises(TaskBlocked, match=r"daily budget is spent: \$1\.0000 of \$1\.00"):
        _run(governance_db, gh, _llm(chat, daily_budget_usd=1.0), tmp_path)
    assert chat.requests == []
    chat.answer(GOOD)
    _, result = _run(governance_db, gh, _llm(chat, daily_budget_usd=1.5), tmp_path)
    assert result.status is TaskStatus.AWAITING_PR_MERGE


def test_budget_reached_between_rounds_blocks_the_next_call(governance_db, gh, chat, tmp_path):
    chat.answer(UNMATCHED).answer(GOOD)
    task_id = _add(governance_db, PAYLOAD)
    ctx = _ctx(governance_db, task_id, gh, _llm(chat, daily_budget_usd=1e-9), tmp_path)
    with pytest.raises(TaskBlocked, match="daily budget is spent"):
        run_code_task(ctx)
    assert len(chat.requests) == 1
    [call] = _calls(governance_db, task_id)
    assert spent_today(ctx) == pytest.approx(call.result["counted_cost_usd"]) and spent_today(ctx)


def test_unreported_cost_is_estimated_from_tokens(governance_db, gh, tmp_path):
    with FakeChat(KEY, report_cost=False) as server:
        server.answer(GOOD)
        llm = _llm(
            server, usd_per_million_prompt_tokens=3.0, usd_per_million_completion_tokens=15.0
        )
        task_id, _ = _run(governance_db, gh, llm, tmp_path)
    [call] = _calls(governance_db, task_id)
    expected = (call.result["prompt_tokens"] * 3 + call.result["completion_tokens"] * 15) / 1e6
    assert call.result["cost_usd"] is None and call.result["cost_source"] == "estimated"
    assert call.result["counted_cost_usd"] == pytest.approx(expected)


def test_a_short_rate_limit_is_waited_out_and_asked_again(governance_db, gh, chat, tmp_path):
    chat.error(429, "Rate limit exceeded", {"Retry-After": "0"}).answer(GOOD)
    task_id, result = _run(governance_db, gh, _llm(chat), tmp_path)
    limited, answered = _calls(governance_db, task_id)
    assert not limited.success and "429" in limited.error_message and answered.success
    assert limited.arguments["round"] == answered.arguments["round"] == 1
    assert result.status is TaskStatus.AWAITING_PR_MERGE


def test_a_long_rate_limit_sends_the_task_back_to_the_queue(governance_db, gh, chat, tmp_path):
    chat.error(429, "Rate limit exceeded", {"Retry-After": "120"})
    with pytest.raises(RetriableError, match="asked to wait 120 s; the task goes back to the"):
        _run(governance_db, gh, _llm(chat), tmp_path)
    assert len(chat.requests) == 1 and gh.repos["acme/app"].pulls == {}


def test_server_errors_are_asked_again_then_retried_later(governance_db, gh, chat, tmp_path):
    for _ in range(3):
        chat.error(503, "upstream overloaded")
    with pytest.raises(RetriableError, match="503 upstream overloaded"):
        _run(governance_db, gh, _llm(chat, max_inline_retries=2), tmp_path)
    assert len(chat.requests) == 3


@pytest.mark.parametrize(
    ("status", "expected"), [(402, "out of credits"), (401, "refused the key"), (404, "check")]
)
def test_refused_key_or_credits_block_the_task(governance_db, gh, chat, tmp_path, status, expected):
    chat.error(status, "nope")
    with pytest.raises(TaskBlocked, match=expected):
        _run(governance_db, gh, _llm(chat), tmp_path)


def test_the_key_appears_only_in_the_authorization_header(governance_db, gh, chat, tmp_path):
    chat.answer(UNMATCHED).answer(GOOD)
    _, result = _run(governance_db, gh, _llm(chat), tmp_path)
    chat.error(401, f"invalid key {KEY}")
    with pytest.raises(TaskBlocked) as err:
        _run(governance_db, gh, _llm(chat), tmp_path)
    assert KEY not in str(err.value)

    with governance_db.engine.connect() as conn:
        stored = [
            str(tuple(row))
            for table in (ToolCall.__table__, TaskArtifact.__table__, GovernanceTask.__table__)
            for row in conn.execute(sa.select(table))
        ]
    assert stored and not any(KEY in text for text in stored)
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert written and not any(KEY.encode() in data for data in written)
    pull = gh.repos["acme/app"].pulls[1]
    assert KEY not in pull.body + pull.title and KEY not in str(result.artifacts)
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in chat.requests)
    assert not any(KEY in str(r.body) for r in chat.requests)


def test_llm_exchange_verifier_can_say_no(governance_db, gh, chat, tmp_path):
    chat.answer(GOOD)
    task_id, result = _run(governance_db, gh, _llm(chat), tmp_path)
    env = VerifyEnv(governance_db.engine, None, _github(gh))
    exchange = result.artifacts[1]

    def check(**changes: Any) -> str:
        fields = {
            "kind": ArtifactKind.LLM_EXCHANGE,
            "uri": exchange.uri,
            "external_id": exchange.external_id,
            "sha256": exchange.sha256,
            "details": dict(exchange.details),
        } | changes
        problems = verify_artifacts([Artifact(**fields)], env)
        assert len(problems) == 1
        return problems[0]

    [pr_call] = _calls(governance_db, task_id, "github_pull_request")
    assert "is not recorded" in check(external_id=new_id())
    assert "is a github_pull_request call, not llm" in check(external_id=pr_call.id)
    assert "recorded a different sha256" in check(sha256="0" * 64)
    other = {**exchange.details, "prompt_sha256": "1" * 64}
    assert "recorded a different prompt" in check(details=other)

    Path(exchange.details["prompt_path"]).write_text("edited afterwards")
    assert "sha256 of prompt file" in check()
    Path(exchange.uri).write_text("a different answer")
    assert "sha256 of answer file" in check()
    Path(exchange.uri).unlink()
    assert "does not exist" in check()

    with governance_db.engine.begin() as conn:
        conn.execute(
            ToolCall.__table__.update()
            .where(ToolCall.__table__.c.id == exchange.external_id)
            .values(success=False)
        )
    assert "did not succeed" in check()


def test_a_retry_with_its_pull_request_open_does_not_ask_the_model_again(
    governance_db, gh, chat, tmp_path
):
    chat.answer(GOOD)
    llm = _llm(chat)
    task_id, first = _run(governance_db, gh, llm, tmp_path)
    again = run_code_task(_ctx(governance_db, task_id, gh, llm, tmp_path / "retry"))
    assert len(chat.requests) == 1
    assert "found the open pull request acme/app#1" in again.summary
    assert [a.kind for a in again.artifacts] == [ArtifactKind.PULL_REQUEST]
    assert again.artifacts[0].details == first.artifacts[0].details
    assert len(gh.repos["acme/app"].pulls) == 1


def test_relevant_files_rank_by_the_instruction_within_the_caps():
    entries = [
        TreeFile("src/app/greeting.py", 100),
        TreeFile("src/app/greetings_test.py", 100),
        TreeFile("docs/greeting/index.md", 100),
        TreeFile("node_modules/greeting.py", 100),
        TreeFile("assets/greeting.png", 100),
        TreeFile("src/huge_greeting.py", 10_000_000),
        TreeFile("README.md", 100),
        *(TreeFile(f"src/greeting{i}/mod.py", 10) for i in range(20)),
    ]
    picked = [e.path for e in relevant_files("Update the greeting text", entries)]
    assert picked[0] == "src/app/greeting.py"
    assert len(picked) == MAX_SEARCH_FILES
    assert not {"node_modules/greeting.py", "assets/greeting.png", "src/huge_greeting.py"} & set(
        picked
    )
    assert "README.md" not in picked
    named = [e.path for e in relevant_files("Fix the typo in README.md", entries)]
    assert named[0] == "README.md"
    assert relevant_files("Refactor the payment module", entries) == []


def test_instruction_task_through_the_executor_awaits_merge_with_verified_artifacts(
    governance_db, db_url, gh, chat, instance
):
    chat.answer(GOOD)
    resources = platform_resources(db_url, github=_github(gh), llm=_llm(chat))
    task_id = _add(governance_db, PAYLOAD)
    drain(instance, resources)
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("awaiting_pr_merge", "verified")
    assert row.completed_at is None and f"{gh.url}/acme/app/pull/1" in row.completion_evidence
    with governance_db.session() as s:
        stored = s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task_id)).all()
    assert sorted((a.kind, a.verified) for a in stored) == [
        ("llm_exchange", True),
        ("pull_request", True),
    ]

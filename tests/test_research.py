"""Research tasks against local servers: pages (boilerplate, redirect, 404, huge, changing,
robots.txt), SearXNG JSON and chat completions; the governance database is SQLite and
PostgreSQL. The real httpx clients talk to the servers through the guarded HTTP path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import GovernanceTask, TaskArtifact, ToolCall
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.handlers.research import NO_SOURCES, run_research_task
from juggernaut_assets.execution.outcome import (
    Artifact,
    HandlerResult,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.execution.research_sources import FETCH_TOOL, SEARCH_TOOL, USER_AGENT
from juggernaut_assets.execution.tools.toolbox import ToolBox
from juggernaut_assets.execution.verify import VerifyEnv, verify_artifacts
from juggernaut_assets.execution.verify_research import verify_research_report
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.llm import NO_LLM_CONFIGURED, LlmResource
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.create import add_task
from tests.conftest import platform_resources
from tests.fakes.chat_server import FakeChat
from tests.fakes.pages_server import (
    BOILERPLATE,
    CHANGING_FIRST,
    CHANGING_LATER,
    SOLAR_FACT,
    SOLAR_MORE,
    WIND_FACT,
    PagesServer,
)
from tests.queue_driver import drain, task_row

KEY = "fake-llm-key-for-research-tests"
QUESTION = "How are solar and wind power developing in the region?"
CAP = 200_000


def block(claim: str, source: int, quote: str) -> str:
    return f"CLAIM: {claim}\nSOURCE: {source}\nQUOTE: {quote}\n"


SOLAR = block("Solar capacity grew by 41 percent in 2025.", 1, SOLAR_FACT)
WIND = block("Offshore wind supplied 18 percent of electricity.", 2, WIND_FACT)
MISQUOTE = block(
    "Solar capacity grew by 60 percent.",
    1,
    "Solar panel installations in the region grew by 60 percent in 2025",
)
WRONG_SOURCE = block("Wind supplied 18 percent.", 1, WIND_FACT)
MALFORMED = "CLAIM: Module prices fell.\nQUOTE: falling module prices and a new rooftop\n"


@pytest.fixture
def pages() -> Iterator[PagesServer]:
    with PagesServer(huge_bytes=CAP * 2) as server:
        yield server


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    with FakeChat(KEY) as server:
        yield server


def _llm(chat: FakeChat, **overrides: Any) -> LlmResource:
    settings = {"api_url": chat.api_url, "api_key": KEY, "model": "m/one", "backoff_seconds": 0.0}
    return LlmResource(**(settings | overrides))


def _settings(pages: PagesServer, **overrides: Any) -> TaskToolsResource:
    port = pages.url.rsplit(":", 1)[1]
    values: dict[str, Any] = {
        "http_allowed_hosts": [f"127.0.0.1:{port}"],
        "http_max_body_bytes": CAP,
        "http_timeout_seconds": 5.0,
    }
    return TaskToolsResource(**(values | overrides))


def _ctx(
    db: GovernanceDB,
    payload: dict[str, Any],
    settings: TaskToolsResource,
    llm: LlmResource | None,
    tmp_path: Path,
) -> TaskContext:
    with db.session() as s:
        task, _ = add_task(s, "research", payload)
        task_id = task.id
    with db.session() as s:
        raw = s.get(GovernanceTask, task_id).payload
    return TaskContext(
        task_id=task_id,
        task_type="research",
        payload=json.dumps(raw),
        engine=db.engine,
        artifacts_dir=tmp_path / "artifacts",
        tools=ToolBox(db.engine, task_id, settings, tmp_path, httpx.Client()),
        github=GitHubResource(),
        log=None,
        llm=llm,
    )


def _calls(db: GovernanceDB, task_id: str, tool: str) -> list[ToolCall]:
    with db.session() as s:
        rows = s.scalars(
            sa.select(ToolCall).where(ToolCall.task_id == task_id, ToolCall.tool_name == tool)
        ).all()
    return sorted(rows, key=lambda r: r.started_at)


def _report(result: HandlerResult) -> Artifact:
    [report] = [a for a in result.artifacts if a.kind is ArtifactKind.RESEARCH_REPORT]
    return report


def _findings(report: Artifact | TaskArtifact) -> str:
    text = Path(report.uri).read_text()
    return text.split("## Findings", 1)[1].split("## Sources", 1)[0]


def test_good_quotes_make_a_verified_report_and_bad_sources_are_left_out(
    governance_db, pages, chat, tmp_path
):
    urls = [pages.page(p) for p in ("/old/solar", "/articles/wind", "/missing", "/huge")]
    urls.append(pages.page("/private/secret"))
    chat.answer(f"Both sources help.\n\n{SOLAR}\n{WIND}\nThat is all.")
    ctx = _ctx(
        governance_db, {"question": QUESTION, "urls": urls}, _settings(pages), _llm(chat), tmp_path
    )
    result = run_research_task(ctx)

    report = _report(result)
    assert verify_artifacts(result.artifacts, VerifyEnv(governance_db.engine)) == []
    assert all(a.verified for a in result.artifacts)
    kinds = [a.kind for a in result.artifacts]
    assert kinds == [ArtifactKind.RESEARCH_REPORT] + [ArtifactKind.FILE] * 4 + [
        ArtifactKind.LLM_EXCHANGE
    ]
    assert [c["source"] for c in report.details["claims"]] == [1, 2]
    text = Path(report.uri).read_text()
    assert f"1. Solar capacity grew by 41 percent in 2025. [1]\n\n   > {SOLAR_FACT}" in text
    solar = pages.page("/articles/solar")
    assert f"[1] [Solar capacity grows]({solar}) (redirected from {urls[0]})" in text
    assert f"[2] [Wind power share rises]({pages.page('/articles/wind')})" in text
    skipped = {s["url"]: s["reason"] for s in report.details["skipped"]}
    assert skipped[urls[2]] == "HTTP 404 Not Found"
    assert "larger than the cap of 200000 bytes" in skipped[urls[3]]
    assert skipped[urls[4]] == "disallowed for crawlers by its robots.txt"
    assert "## Dropped claims" not in text
    assert solar in result.summary and "2 verified claim(s), 0 dropped" in result.summary

    [solar_text] = [
        a
        for a in result.artifacts
        if a.details.get("role") == "source_text" and a.details["source"] == 1
    ]
    stored = Path(solar_text.uri).read_text()
    assert SOLAR_FACT in stored and SOLAR_MORE in stored and BOILERPLATE not in stored
    assert solar_text.details["final_url"] == solar and solar_text.details["url"] == urls[0]
    assert solar_text.details["fetched_at"] and len(solar_text.details["raw_sha256"]) == 64

    assert "/private/secret" not in [p for p, _ in pages.requests]
    assert {ua for _, ua in pages.requests} == {USER_AGENT}
    assert [p for p, _ in pages.requests].count("/robots.txt") == 1
    fetches = _calls(governance_db, ctx.task_id, FETCH_TOOL)
    assert [c.success for c in fetches if c.arguments["purpose"] == "source"] == [
        True,
        True,
        False,
        False,
    ]
    [llm_call] = _calls(governance_db, ctx.task_id, "llm")
    assert llm_call.success and llm_call.result["prompt_tokens"] > 0
    assert llm_call.result["cost_usd"] > 0 and llm_call.result["counted_cost_usd"] > 0
    assert KEY not in json.dumps([llm_call.arguments, llm_call.result])
    [request] = chat.requests
    user = request.messages[1]["content"]
    assert f"[1] Solar capacity grows <{solar}>" in user and WIND_FACT in user
    assert BOILERPLATE not in user


def test_misquote_wrong_source_and_malformed_are_dropped_and_sent_back_once(
    governance_db, pages, chat, tmp_path
):
    urls = [pages.page("/articles/solar"), pages.page("/articles/wind")]
    chat.answer(f"{SOLAR}\n{MISQUOTE}\n{WRONG_SOURCE}\n{MALFORMED}")
    chat.answer(f"{MISQUOTE}\n{block('Wind supplied 18 percent.', 2, WIND_FACT)}")
    ctx = _ctx(
        governance_db, {"question": QUESTION, "urls": urls}, _settings(pages), _llm(chat), tmp_path
    )
    result = run_research_task(ctx)

    assert len(chat.requests) == 2
    reflection = chat.requests[1].last_user
    assert "3 of your claims could not be verified" in reflection
    assert "the quote is not found verbatim in source [1]" in reflection
    assert "the quote is not in source [1]; it is in [2]" in reflection
    assert "malformed block: the block has no SOURCE:" in reflection
    report = _report(result)
    assert [c["text"] for c in report.details["claims"]] == [
        "Solar capacity grew by 41 percent in 2025.",
        "Wind supplied 18 percent.",
    ]
    findings = _findings(report)
    assert "60 percent" not in findings
    dropped = [(d["text"], d["round"]) for d in report.details["dropped"]]
    assert ("Solar capacity grew by 60 percent.", 1) in dropped
    assert ("Solar capacity grew by 60 percent.", 2) in dropped
    assert "## Dropped claims" in Path(report.uri).read_text()
    assert verify_artifacts(result.artifacts, VerifyEnv(governance_db.engine)) == []
    assert len(_calls(governance_db, ctx.task_id, "llm")) == 2


def test_no_verified_claim_fails_the_task_with_the_reasons(governance_db, pages, chat, tmp_path):
    chat.answer(MISQUOTE).answer("I could not find more.")
    payload = {"question": QUESTION, "urls": [pages.page("/articles/solar")]}
    ctx = _ctx(governance_db, payload, _settings(pages), _llm(chat), tmp_path)
    with pytest.raises(TaskRejected) as raised:
        run_research_task(ctx)
    message = str(raised.value)
    assert "no claim of the model" in message
    assert "the quote is not found verbatim in source [1]" in message
    assert "the answer holds no CLAIM block" in message


def test_a_page_that_changes_is_checked_against_what_was_stored(
    governance_db, pages, chat, tmp_path
):
    payload = {"question": "What did the council decide?", "urls": [pages.page("/changing")]}
    later = block("The plan was rejected.", 1, CHANGING_LATER)
    chat.answer(f"{block('The plan was approved.', 1, CHANGING_FIRST)}\n{later}")
    chat.answer("No other claim.")
    ctx = _ctx(governance_db, payload, _settings(pages), _llm(chat), tmp_path)
    result = run_research_task(ctx)
    report = _report(result)
    assert [c["text"] for c in report.details["claims"]] == ["The plan was approved."]
    assert [d["text"] for d in report.details["dropped"]] == ["The plan was rejected."]

    live = httpx.get(pages.page("/changing")).text
    assert CHANGING_LATER in live and CHANGING_FIRST not in live
    env = VerifyEnv(governance_db.engine)
    assert verify_research_report(report, env) is None

    text_path = Path(report.details["sources"][0]["text_path"])
    original = text_path.read_text()
    text_path.write_text(original.replace(CHANGING_FIRST, CHANGING_LATER))
    assert "recorded" in (verify_research_report(report, env) or "")
    text_path.write_text(original)

    forged = json.loads(json.dumps(report.details))
    forged["claims"][0]["quote"] = "The council approved the harbour expansion unanimously."
    tampered = Artifact(report.kind, report.uri, None, report.sha256, forged)
    assert "does not hold what its recorded claims render to" in verify_research_report(
        tampered, env
    )
    Path(report.uri).write_text(
        Path(report.uri).read_text().replace(CHANGING_FIRST, forged["claims"][0]["quote"])
    )
    tampered.sha256 = hashlib.sha256(Path(report.uri).read_bytes()).hexdigest()
    assert verify_research_report(tampered, env) == (
        "claim 1 (The plan was approved.): the quote is not found verbatim in source [1]"
    )
    assert verify_artifacts([report], env) != [] and not report.verified


def test_search_results_become_sources_up_to_max_sources(governance_db, pages, chat, tmp_path):
    pages.search_results = [pages.page("/articles/wind"), pages.page("/articles/solar")]
    chat.answer(block("Offshore wind supplied 18 percent.", 1, WIND_FACT))
    settings = _settings(pages, search_url=pages.url)
    ctx = _ctx(
        governance_db, {"question": QUESTION, "max_sources": 1}, settings, _llm(chat), tmp_path
    )
    result = run_research_task(ctx)
    report = _report(result)
    assert [s["final_url"] for s in report.details["sources"]] == [pages.page("/articles/wind")]
    [search] = _calls(governance_db, ctx.task_id, SEARCH_TOOL)
    assert search.success and search.arguments["q"] == QUESTION
    assert search.result["urls"] == [pages.page("/articles/wind")]
    assert any(p.startswith("/search?q=") and "format=json" in p for p, _ in pages.requests)


def test_no_sources_or_no_llm_or_no_budget_blocks_the_task(governance_db, pages, chat, tmp_path):
    settings = _settings(pages)
    ctx = _ctx(governance_db, {"question": QUESTION}, settings, _llm(chat), tmp_path)
    with pytest.raises(TaskBlocked, match="JUGGERNAUT_SEARCH_URL") as raised:
        run_research_task(ctx)
    assert str(raised.value) == NO_SOURCES

    payload = {"question": QUESTION, "urls": [pages.page("/articles/solar")]}
    ctx = _ctx(governance_db, payload, settings, None, tmp_path)
    with pytest.raises(TaskBlocked) as raised:
        run_research_task(ctx)
    assert str(raised.value) == NO_LLM_CONFIGURED
    assert pages.requests == []

    ctx = _ctx(governance_db, payload, settings, _llm(chat, daily_budget_usd=0.0), tmp_path)
    with pytest.raises(TaskBlocked, match="daily budget is spent"):
        run_research_task(ctx)
    assert chat.requests == []


def test_research_task_completes_through_the_executor_only_with_verified_claims(
    db_url, instance, pages, chat
):
    chat.answer(f"{SOLAR}\n{MISQUOTE}").answer(MISQUOTE)
    db = GovernanceDB(url=db_url)
    payload = {"question": QUESTION, "urls": [pages.page("/articles/solar")]}
    with db.session() as s:
        task, _ = add_task(s, "research", payload)
        task_id = task.id
    resources = platform_resources(db_url, task_tools=_settings(pages), llm=_llm(chat))
    drain(instance, resources)

    row = task_row(db_url, task_id)
    assert row.status == "completed" and row.verification_status == "verified"
    with db.session() as s:
        artifacts = s.scalars(sa.select(TaskArtifact).where(TaskArtifact.task_id == task_id)).all()
    [report] = [a for a in artifacts if a.kind == ArtifactKind.RESEARCH_REPORT.value]
    assert report.verified and all(a.verified for a in artifacts)
    assert [c["text"] for c in report.details["claims"]] == [
        "Solar capacity grew by 41 percent in 2025."
    ]
    assert "60 percent" not in _findings(report)
    assert "research report: 1 verified claim(s), 2 dropped" in row.completion_evidence


def test_a_failed_search_is_noted_when_urls_remain_and_retried_when_none(
    governance_db, pages, chat, tmp_path
):
    down = "http://127.0.0.1:9"
    chat.answer(SOLAR)
    settings = _settings(pages, search_url=down)
    payload = {"question": QUESTION, "urls": [pages.page("/articles/solar")]}
    result = run_research_task(_ctx(governance_db, payload, settings, _llm(chat), tmp_path))
    [noted] = _report(result).details["skipped"]
    assert noted["url"] == down and "the search provider did not answer" in noted["reason"]

    ctx = _ctx(governance_db, {"question": QUESTION}, settings, _llm(chat), tmp_path)
    with pytest.raises(RetriableError, match="the search provider did not answer"):
        run_research_task(ctx)
    [failed] = _calls(governance_db, ctx.task_id, SEARCH_TOOL)
    assert not failed.success and failed.error_message

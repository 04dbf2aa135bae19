"""`LlmResource` against a local chat-completions server: real httpx, real HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from juggernaut_assets.resources.llm import (
    ChatResult,
    LlmMalformedResponse,
    LlmNotAuthorised,
    LlmNotConfigured,
    LlmOutOfCredits,
    LlmRefused,
    LlmResource,
    LlmTransient,
)
from tests.fakes.chat_server import USD_PER_COMPLETION_TOKEN, USD_PER_PROMPT_TOKEN, FakeChat
from tests.fakes.local_server import Reply

KEY = "fake-llm-key-for-llm-tests"
MESSAGES = [
    {"role": "system", "content": "You edit files."},
    {"role": "user", "content": "Make the readme friendlier."},
]


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    with FakeChat(KEY) as server:
        yield server


def _llm(server: FakeChat, **overrides: object) -> LlmResource:
    settings: dict[str, object] = {"api_url": server.api_url, "api_key": KEY, "model": "m/one"}
    return LlmResource(**(settings | overrides))


def test_chat_sends_the_protocol_body_and_the_key_only_in_the_header(chat):
    chat.answer("README.md\n<<<<<<< NEW FILE\nhi\n>>>>>>> NEW FILE\n")
    result = _llm(chat, max_tokens=1234).chat(MESSAGES)
    assert isinstance(result, ChatResult)
    assert result.content.startswith("README.md\n<<<<<<< NEW FILE")
    assert (result.finish_reason, result.model, result.response_id) == ("stop", chat.model, "gen-1")
    assert result.prompt_tokens and result.completion_tokens and result.duration_ms >= 0
    expected = (
        result.prompt_tokens * USD_PER_PROMPT_TOKEN
        + result.completion_tokens * USD_PER_COMPLETION_TOKEN
    )
    assert result.cost_usd == pytest.approx(expected)

    [request] = chat.requests
    assert request.path == "/api/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.body == {
        "model": "m/one",
        "messages": MESSAGES,
        "max_tokens": 1234,
        "temperature": 0.0,
    }
    assert KEY not in str(request.body)


def test_reported_cost_counts_as_is_and_a_missing_one_is_priced_from_tokens():
    llm = LlmResource(usd_per_million_prompt_tokens=1.0, usd_per_million_completion_tokens=4.0)
    reported = ChatResult("x", "stop", "m", 1000, 100, 0.5, 1)
    assert llm.counted_cost(reported) == 0.5
    silent = ChatResult("x", "stop", "m", 1_000_000, 500_000, None, 1)
    assert llm.counted_cost(silent) == pytest.approx(1.0 + 2.0)


def test_cost_is_none_when_the_api_does_not_report_it():
    with FakeChat(KEY, report_cost=False) as server:
        server.answer("hello")
        result = _llm(server).chat(MESSAGES)
    assert result.cost_usd is None and result.prompt_tokens is not None


def test_without_a_key_nothing_is_sent(chat):
    llm = _llm(chat, api_key=None)
    assert not llm.configured
    with pytest.raises(LlmNotConfigured, match="no LLM is configured"):
        llm.chat(MESSAGES)
    assert chat.requests == []


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_not_authorised_and_never_echoed(chat, status):
    chat.error(status, f"key {KEY} is not valid")
    with pytest.raises(LlmNotAuthorised) as err:
        _llm(chat).chat(MESSAGES)
    message = str(err.value)
    assert str(status) in message and "JUGGERNAUT_LLM_API_KEY" in message
    assert KEY not in message and err.value.status == status


def test_wrong_key_is_refused_by_the_server(chat):
    with pytest.raises(LlmNotAuthorised, match="401"):
        _llm(chat, api_key="fake-other-llm-key").chat(MESSAGES)


def test_out_of_credits_is_its_own_error(chat):
    chat.error(402, "Insufficient credits")
    with pytest.raises(LlmOutOfCredits, match="402 Insufficient credits"):
        _llm(chat).chat(MESSAGES)


def test_rate_limit_carries_the_wait_the_api_asked_for(chat):
    chat.error(429, "Rate limit exceeded", {"Retry-After": "7"})
    with pytest.raises(LlmTransient) as err:
        _llm(chat).chat(MESSAGES)
    assert err.value.retry_after_s == 7 and err.value.status == 429
    assert "asked to wait 7 s" in str(err.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient_without_a_wait(chat, status):
    chat.error(status, "upstream error")
    with pytest.raises(LlmTransient) as err:
        _llm(chat).chat(MESSAGES)
    assert err.value.retry_after_s is None and str(status) in str(err.value)


def test_a_slow_answer_times_out_as_transient(chat):
    chat.answer("late", delay_s=1.5)
    with pytest.raises(LlmTransient, match=r"did not answer within 0\.3 s"):
        _llm(chat, timeout_seconds=0.3).chat(MESSAGES)


def test_an_unreachable_api_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = LlmResource(api_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    with pytest.raises(LlmTransient, match="could not reach the model API") as err:
        llm.chat(MESSAGES)
    assert KEY not in str(err.value)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, "<html>gateway</html>"), "not JSON"),
        (Reply(200, {"id": "x", "choices": []}), "no choices[0].message.content"),
        (Reply(200, {"choices": [{"message": {"content": None}}]}), "no choices[0].message"),
        (Reply(200, [1, 2]), "not an object"),
        (Reply(200, {"error": {"message": "provider crashed", "code": 502}}), "provider crashed"),
    ],
)
def test_malformed_bodies_give_a_clear_error(chat, reply, expected):
    chat.raw(reply)
    with pytest.raises(LlmMalformedResponse) as err:
        _llm(chat).chat(MESSAGES)
    assert expected in str(err.value)


def test_an_answer_larger_than_the_cap_is_refused_unread(chat):
    chat.raw(Reply(200, {"choices": [{"message": {"content": "x" * 200_000}}]}))
    with pytest.raises(LlmMalformedResponse, match="larger than 100,000 bytes"):
        _llm(chat, max_response_bytes=100_000).chat(MESSAGES)
    chat.answer("small enough")
    assert _llm(chat, max_response_bytes=100_000).chat(MESSAGES).content == "small enough"


def test_a_model_that_refuses_a_temperature_is_asked_again_without_it():
    with FakeChat(KEY, refuse_temperature=True) as server:
        server.answer("ok")
        result = _llm(server).chat(MESSAGES)
    assert result.content == "ok"
    first, second = server.requests
    assert first.body["temperature"] == 0.0 and "temperature" not in second.body


def test_temperature_none_is_not_sent(chat):
    chat.answer("ok")
    _llm(chat, temperature=None).chat(MESSAGES)
    assert "temperature" not in chat.requests[0].body


def test_other_refusals_name_the_status_and_message(chat):
    chat.error(400, "This model's maximum context length is 200000 tokens")
    with pytest.raises(LlmRefused, match="400 This model's maximum context length") as err:
        _llm(chat).chat(MESSAGES)
    assert err.value.status == 400

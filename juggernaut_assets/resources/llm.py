"""A language model behind the OpenAI-compatible chat-completions protocol, over httpx."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg
import httpx

from juggernaut_assets.lib.redaction import redact_text
from juggernaut_assets.resources.bounded_http import ResponseTooLarge, send_bounded
from juggernaut_assets.resources.http_sources import retry_after_seconds

DEFAULT_API_URL = "https://openrouter.ai/api/v1"
DEFAULT_MODEL = "anthropic/claude-sonnet-5.5"
DEFAULT_DAILY_BUDGET_USD = 5.0
DEFAULT_USD_PER_MILLION_PROMPT_TOKENS = 3.0
DEFAULT_USD_PER_MILLION_COMPLETION_TOKENS = 15.0
NO_LLM_CONFIGURED = "no LLM is configured: set JUGGERNAUT_LLM_API_KEY (or OPENROUTER_API_KEY)"


class LlmError(Exception):
    """The model API did not give a usable answer; the message is meant for a person."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LlmNotConfigured(LlmError):
    """No API key is bound."""


class LlmNotAuthorised(LlmError):
    """401/403: the key is wrong, revoked, or may not use this model."""


class LlmOutOfCredits(LlmError):
    """402: the account behind the key has no credits left."""


class LlmTransient(LlmError):
    """429, 5xx, a timeout or a broken connection: asking again later may work."""

    def __init__(self, message: str, status: int | None, retry_after_s: float | None) -> None:
        super().__init__(message, status)
        self.retry_after_s = retry_after_s
        """How long the API asked us to wait (`Retry-After`), when it said."""


class LlmRefused(LlmError):
    """Another 4xx: the API will not serve this request as it is (too long, unknown model…)."""


class LlmMalformedResponse(LlmError):
    """A 2xx whose body is not a chat completion with a message."""


@dataclass(frozen=True)
class ChatResult:
    content: str
    finish_reason: str | None
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    """The cost the API reported (`usage.cost`, OpenRouter), or None when it did not."""
    duration_ms: int
    response_id: str | None = None


class LlmResource(dg.ConfigurableResource):
    """The model that writes generated code changes (OpenAI-compatible chat completions).

    - `api_url`: `JUGGERNAUT_LLM_API_URL`; requests go to `POST {api_url}/chat/completions`
      (default OpenRouter, `https://openrouter.ai/api/v1`).
    - `api_key`: `JUGGERNAUT_LLM_API_KEY`, else `OPENROUTER_API_KEY`. Sent only in the
      `Authorization` header to `api_url`; never logged, never stored. Without it, generated
      changes are `blocked` with "no LLM is configured".
    - `model`: `JUGGERNAUT_LLM_MODEL` (default `anthropic/claude-sonnet-5.5`: a current
      Sonnet-class model, strong at exact search/replace edits, at $2/$10 per million tokens).
    - `daily_budget_usd`: `JUGGERNAUT_LLM_DAILY_BUDGET_USD` (default 5): once the model calls
      of the current UTC day have cost this much, generation is blocked until the next day.
      A call counts what the API reported (`usage.cost`); when it reports no cost, its tokens
      are priced at `usd_per_million_prompt_tokens` / `usd_per_million_completion_tokens`
      (default $3 / $15, above the default model's price, so an estimate errs high).
    - `max_tokens`, `temperature` (0; None leaves it to the model), `timeout_seconds`.
    - `max_inline_retries`, `max_inline_wait_seconds`, `backoff_seconds`: a 429 or 5xx is
      asked again within the task up to this many times when the wait is short; longer waits
      send the task back to the queue.
    """

    api_url: str = DEFAULT_API_URL
    api_key: str | None = None
    model: str = DEFAULT_MODEL
    daily_budget_usd: float = DEFAULT_DAILY_BUDGET_USD
    usd_per_million_prompt_tokens: float = DEFAULT_USD_PER_MILLION_PROMPT_TOKENS
    usd_per_million_completion_tokens: float = DEFAULT_USD_PER_MILLION_COMPLETION_TOKENS
    max_tokens: int = 8192
    max_response_bytes: int = 8 * 1024 * 1024
    """An answer larger than this is refused unread (a chat completion of `max_tokens` tokens is
    a few hundred kB)."""
    temperature: float | None = 0.0
    timeout_seconds: float = 300.0
    max_inline_retries: int = 2
    max_inline_wait_seconds: float = 20.0
    backoff_seconds: float = 2.0

    @property
    def configured(self) -> bool:
        return bool(self.api_key)

    @property
    def endpoint(self) -> str:
        return self.api_url.rstrip("/") + "/chat/completions"

    def counted_cost(self, result: ChatResult) -> float:
        """What a call counts against the daily budget: the reported cost, else an estimate."""
        if result.cost_usd is not None:
            return result.cost_usd
        return (
            (result.prompt_tokens or 0) * self.usd_per_million_prompt_tokens
            + (result.completion_tokens or 0) * self.usd_per_million_completion_tokens
        ) / 1_000_000

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int | None = None) -> ChatResult:
        """One chat completion. Raises an `LlmError` subclass when there is no usable answer."""
        if not self.api_key:
            raise LlmNotConfigured(NO_LLM_CONFIGURED)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens or self.max_tokens,
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        started = time.perf_counter()
        response = self._post(body)
        if response.status_code == 400 and "temperature" in body and _names_temperature(response):
            body.pop("temperature")
            response = self._post(body)
        duration_ms = int((time.perf_counter() - started) * 1000)
        if response.status_code >= 300:
            raise self._error(response)
        return _parse(response, self.model, duration_ms, self._scrub)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        timeout = httpx.Timeout(self.timeout_seconds, connect=min(self.timeout_seconds, 15.0))
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                return send_bounded(
                    client,
                    "POST",
                    self.endpoint,
                    max_bytes=self.max_response_bytes,
                    json=body,
                    headers=headers,
                )
        except ResponseTooLarge as exc:
            raise LlmMalformedResponse(f"the model API's answer was refused: {exc}") from None
        except httpx.TimeoutException as exc:
            raise LlmTransient(
                f"the model API did not answer within {self.timeout_seconds:g} s "
                f"({type(exc).__name__})",
                None,
                None,
            ) from None
        except httpx.HTTPError as exc:
            raise LlmTransient(
                f"could not reach the model API ({type(exc).__name__}: {self._scrub(str(exc))})",
                None,
                None,
            ) from None

    def _scrub(self, text: str) -> str:
        return redact_text(text, [self.api_key] if self.api_key else [])

    def _error(self, response: httpx.Response) -> LlmError:
        status = response.status_code
        detail = f"{status} {self._scrub(_message(response))}"
        if status in (401, 403):
            return LlmNotAuthorised(
                f"the model API refused the key ({detail}): set a valid JUGGERNAUT_LLM_API_KEY "
                "(or OPENROUTER_API_KEY) that may use this model",
                status,
            )
        if status == 402:
            return LlmOutOfCredits(
                f"the model API account is out of credits ({detail}): add credits, then retry "
                "the task",
                status,
            )
        if status == 429 or status >= 500 or status == 408:
            wait = retry_after_seconds(response)
            asked = f", asked to wait {wait:g} s" if wait is not None else ""
            return LlmTransient(f"the model API answered {detail}{asked}", status, wait)
        if status in (301, 302, 303, 307, 308):
            return LlmRefused(
                f"the model API redirected ({status}): check JUGGERNAUT_LLM_API_URL", status
            )
        return LlmRefused(f"the model API refused the request ({detail})", status)


def _names_temperature(response: httpx.Response) -> bool:
    return "temperature" in _message(response).lower()


def _message(response: httpx.Response) -> str:
    """The error text of an error answer (OpenAI shape `{"error": {"message": …}}`)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        if body.get("message"):
            return str(body["message"])[:300]
    return str(body)[:300]


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _parse(
    response: httpx.Response, model: str, duration_ms: int, scrub: Callable[[str], str]
) -> ChatResult:
    try:
        body = response.json()
    except ValueError:
        raise LlmMalformedResponse(
            f"the model API answered {response.status_code} with a body that is not JSON: "
            f"{scrub(response.text[:200])!r}",
            response.status_code,
        ) from None
    if not isinstance(body, dict):
        raise LlmMalformedResponse("the model API answered with JSON that is not an object")
    if isinstance(body.get("error"), dict | str):
        raise LlmMalformedResponse(
            f"the model API answered {response.status_code} with an error: "
            f"{scrub(_message(response))}",
            response.status_code,
        )
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise LlmMalformedResponse(
            "the model API's answer has no choices[0].message.content text "
            f"(keys: {', '.join(sorted(body)) or 'none'})",
            response.status_code,
        )
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    cost = usage.get("cost")
    return ChatResult(
        content=content,
        finish_reason=first.get("finish_reason") if isinstance(first, dict) else None,
        model=str(body.get("model") or model),
        prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
        completion_tokens=_int_or_none(usage.get("completion_tokens")),
        cost_usd=float(cost)
        if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        duration_ms=duration_ms,
        response_id=str(body["id"]) if body.get("id") else None,
    )

"""An OpenAI-compatible chat-completions server on 127.0.0.1, answering from a script.

`POST {url}/api/v1/chat/completions` with `Authorization: Bearer {key}`. Each call takes the
next scripted answer: a completion (`answer`), an error status (`error`), or any raw reply
(`raw`, e.g. a body that is not a completion). Every request is recorded with its headers and
JSON body, so tests can check what was sent (a reflection round, the key only in the header).
Usage is reported as the real APIs do: token counts always, `usage.cost` (as OpenRouter does)
unless the server is built with `report_cost=False`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any

from tests.fakes.local_server import LocalServer, Reply

PATH = "/api/v1/chat/completions"
USD_PER_PROMPT_TOKEN = 2e-6
USD_PER_COMPLETION_TOKEN = 10e-6


@dataclass
class ChatRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.body.get("messages") or [])

    @property
    def last_user(self) -> str:
        users = [m["content"] for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""


@dataclass
class _Scripted:
    reply: Reply | None = None
    content: str | None = None
    finish_reason: str = "stop"
    cost: float | None = None
    delay_s: float = 0.0


def tokens(text: str) -> int:
    """The fake's tokenizer: one token per four characters, at least one."""
    return max(1, len(text) // 4)


class FakeChat(LocalServer):
    """Chat completions for one key; answers are taken from the script in order."""

    def __init__(
        self,
        key: str = "fake-llm-key-0123456789",
        *,
        report_cost: bool = True,
        refuse_temperature: bool = False,
        model: str = "fake/model-1",
    ) -> None:
        super().__init__()
        self.key = key
        self.report_cost = report_cost
        self.refuse_temperature = refuse_temperature
        self.model = model
        self.requests: list[ChatRequest] = []
        self.script: list[_Scripted] = []
        self._lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return self.url + "/api/v1"

    def answer(
        self,
        content: str,
        *,
        finish_reason: str = "stop",
        cost: float | None = None,
        delay_s: float = 0.0,
    ) -> FakeChat:
        """Queue a completion whose message is `content`."""
        self.script.append(
            _Scripted(content=content, finish_reason=finish_reason, cost=cost, delay_s=delay_s)
        )
        return self

    def error(
        self, status: int, message: str = "error", headers: dict[str, str] | None = None
    ) -> FakeChat:
        """Queue an error answer in the OpenAI shape `{"error": {"message", "code"}}`."""
        body = {"error": {"message": message, "code": status}}
        self.script.append(_Scripted(reply=Reply(status, body, headers or {})))
        return self

    def raw(self, reply: Reply) -> FakeChat:
        self.script.append(_Scripted(reply=reply))
        return self

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {"unparsed": body.decode(errors="replace")}
        with self._lock:
            self.requests.append(ChatRequest(path, {k: v for k, v in headers.items()}, data))
            if method != "POST" or path != PATH:
                return Reply(404, {"error": {"message": f"no route {method} {path}"}})
            if headers.get("Authorization") != f"Bearer {self.key}":
                return Reply(401, {"error": {"message": "No auth credentials found", "code": 401}})
            if self.refuse_temperature and "temperature" in data:
                message = "temperature is not supported with this model"
                return Reply(400, {"error": {"message": message, "code": 400}})
            if not self.script:
                return Reply(500, {"error": {"message": "the fake has no scripted answer left"}})
            step = self.script.pop(0)
        if step.delay_s:
            time.sleep(step.delay_s)
        if step.reply is not None:
            return step.reply
        return Reply(200, self._completion(data, step))

    def _completion(self, data: dict[str, Any], step: _Scripted) -> dict[str, Any]:
        prompt = "".join(str(m.get("content", "")) for m in data.get("messages") or [])
        content = step.content or ""
        usage: dict[str, Any] = {
            "prompt_tokens": tokens(prompt),
            "completion_tokens": tokens(content),
            "total_tokens": tokens(prompt) + tokens(content),
        }
        if self.report_cost:
            usage["cost"] = (
                step.cost
                if step.cost is not None
                else usage["prompt_tokens"] * USD_PER_PROMPT_TOKEN
                + usage["completion_tokens"] * USD_PER_COMPLETION_TOKEN
            )
        return {
            "id": f"gen-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": step.finish_reason,
                }
            ],
            "usage": usage,
        }

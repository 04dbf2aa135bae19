"""A programmable HTTP server on 127.0.0.1 for tests: canned replies by method and path."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from tests.fakes.local_server import LocalServer, Reply

__all__ = ["LocalHTTPServer", "Received", "Reply"]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LocalHTTPServer(LocalServer):
    """Serves canned replies by (method, path); records every request it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.received: list[Received] = []

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        self.received.append(Received(method, path, dict(headers), body))
        replies = self.routes.get((method, path.split("?", 1)[0]))
        if not replies:
            return Reply(404, "not found")
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def route(self, method: str, path: str, *replies: Reply) -> str:
        """Answer `method path` with these replies in order (the last one repeats)."""
        self.routes[(method, path)] = list(replies)
        return f"{self.url}{path}"

"""A server on 127.0.0.1 that speaks for the public trend and domain sources.

Each source lives under its own prefix (`/github/...`, `/hackernews/...`); a request is answered
with the bundled recording for the same request to the real service (the replay fixtures), so
the real httpx client and parsers see the services' own response shapes. RDAP: `/rdap_bootstrap`
serves IANA's bootstrap with every server rewritten to `/rdap/<host>/...` here, so domain
lookups come back to this server too. Tests inject faults
per source: a queue of replies served first (`fail_next`), or a reply that always wins
(`break_source`).
"""

from __future__ import annotations

import json
from email.message import Message

from juggernaut_assets.lib.sources import TREND_SOURCES, rdap, wayback
from juggernaut_assets.resources.replay import load_recordings, replay_key
from tests.fakes.http_server import Received
from tests.fakes.local_server import LocalServer, Reply

REAL_BASES = {name: module.DEFAULT_BASE for name, module in TREND_SOURCES.items()}
REAL_BASES["wayback"] = wayback.DEFAULT_BASE


class SourcesServer(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.recordings = load_recordings()
        self.received: list[Received] = []
        self.queued: dict[str, list[Reply]] = {}
        self.broken: dict[str, Reply] = {}
        self.extra: dict[str, Reply] = {}

    def base_urls(self, *sources: str) -> dict[str, str]:
        """`HttpSources.base_urls` pointing these sources (default: all) at this server."""
        urls = {name: f"{self.url}/{name}" for name in (sources or REAL_BASES)}
        return {**urls, "rdap_bootstrap": f"{self.url}/rdap_bootstrap"}

    def fail_next(self, source: str, *replies: Reply) -> None:
        self.queued.setdefault(source, []).extend(replies)

    def break_source(self, source: str, reply: Reply) -> None:
        self.broken[source] = reply

    def serve(self, path: str, reply: Reply) -> str:
        """Answer `path` (any query) with `reply`; returns its URL."""
        self.extra[path] = reply
        return f"{self.url}{path}"

    def requests_to(self, source: str) -> list[Received]:
        return [r for r in self.received if r.path.startswith(f"/{source}/")]

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        self.received.append(Received(method, path, dict(headers), body))
        if path.split("?", 1)[0] in self.extra:
            return self.extra[path.split("?", 1)[0]]
        if path == "/rdap_bootstrap":
            return self._bootstrap()
        source, _, rest = path.lstrip("/").partition("/")
        if source == "rdap" and not self.queued.get(source) and source not in self.broken:
            return self._recorded(f"https://{rest}")
        if self.queued.get(source):
            return self.queued[source].pop(0)
        if source in self.broken:
            return self.broken[source]
        if source not in REAL_BASES:
            return Reply(404, {"error": f"no source {source}"})
        return self._recorded(f"{REAL_BASES[source]}/{rest}")

    def _bootstrap(self) -> Reply:
        record = self.recordings[replay_key(rdap.BOOTSTRAP_URL)]
        text = json.dumps(record["json"]).replace("https://", f"{self.url}/rdap/")
        return Reply(200, json.loads(text))

    def _recorded(self, url: str) -> Reply:
        record = self.recordings.get(replay_key(url))
        if record is None:  # not a 404: to RDAP that would mean "not registered"
            return Reply(500, {"message": f"the test server has no recording for {url}"})
        payload = json.dumps(record["json"]) if "json" in record else record.get("text", "")
        headers = {
            ("Content-Type" if k.lower() == "content-type" else k): v
            for k, v in record.get("headers", {}).items()
        }
        return Reply(record["status"], payload.encode(), headers)

"""Replay mode: an httpx transport that answers from bundled recorded responses.

The HTTP code path is the same as live (the same client, headers, retries and parsers); only
the transport differs. A request matches a recording when their URLs are equal after every
date-like token (`2026-11-24`, `20261124`, `2026112400`, ten-digit unix times) reads `{date}`
and the query parameters are sorted: a daily scan replays on any day.
A request with no recording raises `NoRecording` (a request error, not retried): never a
made-up status, since a 404 would mean "not registered" to RDAP.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx

REPLAY_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "replay"
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|(?<!\d)\d{8}(?:\d{2})?(?!\d)")


def _undated(text: str) -> str:
    return _DATE_LIKE.sub("{date}", text)


def replay_key(url: str) -> str:
    """The URL a recording answers, with dates replaced and query parameters sorted."""
    parts = urlsplit(url)
    query = sorted((k, _undated(v)) for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.netloc.lower()}{_undated(unquote(parts.path))}?{urlencode(query)}"


@functools.cache
def load_recordings(directory: Path = REPLAY_DIR) -> dict[str, dict]:
    """Every `*.json` recording under `directory`, by replay key (read once per process)."""
    recordings: dict[str, dict] = {}
    for path in sorted(directory.rglob("*.json")):
        record = json.loads(path.read_text())
        if isinstance(record, dict) and "url" in record and "status" in record:
            recordings[replay_key(record["url"])] = record
    return recordings


class NoRecording(httpx.RequestError):
    """Replay mode has no recorded response for this request."""


class ReplayTransport(httpx.BaseTransport):
    """Serves recordings; no request leaves the machine."""

    def __init__(self, directory: Path = REPLAY_DIR) -> None:
        self.recordings = load_recordings(directory)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        record = self.recordings.get(replay_key(str(request.url)))
        if record is None:
            raise NoRecording(
                f"replay mode: no recorded response for {request.url}", request=request
            )
        if "json" in record:
            content = json.dumps(record["json"]).encode()
        else:
            content = str(record.get("text", "")).encode()
        headers = {**record.get("headers", {}), "x-replay": "recorded"}
        return httpx.Response(record["status"], content=content, headers=headers, request=request)

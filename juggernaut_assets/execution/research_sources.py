"""Sources of a research task: found (payload URLs, optional SearXNG search), fetched, reduced
to their main text, and stored.

Every page is fetched through the `http` tool's guarded path (`guarded_http`, `http_fetch`:
the host allowlist and address rules on every redirect hop, the body cap
`JUGGERNAUT_HTTP_MAX_BODY_BYTES`), with a User-Agent that names the crawler, and only where the
site's robots.txt (fetched the same way) allows it. The main text is extracted with
trafilatura. The raw body and the extracted text are stored as `file` artifacts with the URL,
the final URL after redirects, `fetched_at` and the sha256 of each; a source that is
unreachable, not a page, empty or disallowed is recorded with its reason and left out. Every
request is a `tool_calls` row (`research_fetch`, `web_search`).
"""

from __future__ import annotations

import hashlib
import urllib.robotparser
from dataclasses import dataclass, field
from typing import Any

import httpx
import trafilatura
from upath import UPath

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import utcnow
from juggernaut_assets.execution.call_log import recorded_call
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import Artifact, RetriableError, TaskRejected
from juggernaut_assets.execution.tools.guarded_http import guarded_client, plain_client
from juggernaut_assets.execution.tools.http_fetch import Exchange, fetch
from juggernaut_assets.lib.claims import SkippedSource
from juggernaut_assets.lib.redaction import scrub_url
from juggernaut_assets.resources.task_tools import TaskToolsResource

USER_AGENT = "juggernaut-research/1.0 (+https://github.com/juggernaut-assets; polite crawler)"
ROBOTS_AGENT = "juggernaut-research"
FETCH_TOOL = "research_fetch"
SEARCH_TOOL = "web_search"
SOURCES_DIR = "sources"
MAX_TEXT_CHARS = 30_000
"""Extracted text kept (and shown to the model) per source; the rest is cut and said so."""
MAX_ROBOTS_BYTES = 512 * 1024
DEADLINE_FACTOR = 4
PAGE_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)


@dataclass(frozen=True)
class FetchedSource:
    """One usable source: where it came from and the files holding what was fetched."""

    number: int
    url: str
    final_url: str
    title: str
    fetched_at: str
    raw_path: UPath
    raw_sha256: str
    text_path: UPath
    text_sha256: str
    text: str
    truncated: bool


@dataclass
class Sources:
    """The outcome of gathering: usable sources, the ones left out, and their artifacts."""

    fetched: list[FetchedSource] = field(default_factory=list)
    skipped: list[SkippedSource] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    transient: bool = False
    """True when a source was left out for a reason that may pass (a timeout, a 5xx)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def search(ctx: TaskContext, settings: TaskToolsResource, question: str, limit: int) -> list[str]:
    """Result URLs of a SearXNG search for `question` (`GET /search?q=…&format=json`)."""
    base = (settings.search_url or "").rstrip("/")
    arguments = {"url": scrub_url(f"{base}/search"), "q": question, "format": "json"}
    ctx.tools.fence()
    with recorded_call(ctx.engine, ctx.task_id, SEARCH_TOOL, arguments) as record:
        with plain_client(USER_AGENT) as client:
            try:
                response = client.get(
                    f"{base}/search",
                    params={"q": question, "format": "json"},
                    timeout=settings.http_timeout_seconds,
                )
                data = response.json() if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError) as exc:
                record.success, record.error = False, f"{type(exc).__name__}: {exc}"
                raise RetriableError(f"the search provider did not answer: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            record.success = False
            record.error = f"HTTP {response.status_code}: not a SearXNG JSON answer"
            raise RetriableError(f"the search provider answered badly ({record.error})")
        urls = [
            r["url"]
            for r in data["results"]
            if isinstance(r, dict) and isinstance(r.get("url"), str)
        ]
        urls = list(dict.fromkeys(urls))[:limit]
        record.result = {"status_code": response.status_code, "results": len(urls), "urls": urls}
    return urls


class _Fetcher:
    """Fetches for one task: a guarded client, robots.txt read once per origin."""

    def __init__(self, ctx: TaskContext, settings: TaskToolsResource) -> None:
        self.ctx = ctx
        self.settings = settings
        self.allowed = settings.allow_list()
        self.client = guarded_client(self.allowed, USER_AGENT, settings.http_timeout_seconds)
        self.robots: dict[str, urllib.robotparser.RobotFileParser | str] = {}
        self.requests = 0

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, body_path: UPath, cap: int, purpose: str) -> Exchange:
        """One guarded GET (redirects followed hop by hop), recorded as a `tool_calls` row."""
        self.ctx.tools.fence()
        arguments = {"url": scrub_url(url), "purpose": purpose, "max_body_bytes": cap}
        with recorded_call(self.ctx.engine, self.ctx.task_id, FETCH_TOOL, arguments) as record:
            request = self.client.build_request("GET", url, headers={"Accept-Encoding": "identity"})
            try:
                exchange = fetch(
                    self.client,
                    request,
                    allowed=self.allowed,
                    credential=None,
                    body_path=body_path,
                    max_body_bytes=cap,
                    deadline_seconds=self.settings.http_timeout_seconds * DEADLINE_FACTOR,
                )
            except (TaskRejected, RetriableError) as exc:
                record.success, record.error = False, str(exc).removeprefix("http step: ")
                raise
            record.result = {
                "status_code": exchange.status_code,
                "content_type": exchange.content_type,
                "bytes": exchange.bytes,
                "sha256": exchange.sha256,
                "final_url": exchange.hops[-1]["url"],
                "redirects": exchange.hops[:-1],
            }
            record.success = 200 <= exchange.status_code < 300
            if not record.success:
                record.error = f"HTTP {exchange.status_code} {exchange.reason}"
        return exchange

    def robots_for(self, url: httpx.URL) -> urllib.robotparser.RobotFileParser | str:
        """The origin's robots rules, or why the origin may not be crawled (RFC 9309)."""
        origin = f"{url.scheme}://{url.netloc.decode()}"
        if origin in self.robots:
            return self.robots[origin]
        self.requests += 1
        path = self.ctx.artifacts_dir / SOURCES_DIR / f"robots-{self.requests:02d}.txt"
        parser = urllib.robotparser.RobotFileParser(f"{origin}/robots.txt")
        found: urllib.robotparser.RobotFileParser | str = parser
        try:
            exchange = self.get(f"{origin}/robots.txt", path, MAX_ROBOTS_BYTES, "robots.txt")
        except (TaskRejected, RetriableError, httpx.HTTPError) as exc:
            found = f"its robots.txt could not be read ({_reason(exc)}), so it is not crawled"
        else:
            status = exchange.status_code
            if 200 <= status < 300:
                parser.parse(path.read_bytes().decode("utf-8", errors="replace").splitlines())
            elif status >= 500:
                found = f"its robots.txt answered HTTP {status}, so it is not crawled"
            else:
                parser.parse([])
        path.unlink(missing_ok=True)
        self.robots[origin] = found
        return found


def _reason(exc: Exception) -> str:
    return str(exc).removeprefix("http step: ") or type(exc).__name__


def _extract(raw: bytes, content_type: str, url: str) -> tuple[str, str]:
    """(title, main text) of a page or plain-text body; empty text when there is none."""
    if content_type in TEXT_TYPES:
        return "", raw.decode("utf-8", errors="replace").strip()
    text = trafilatura.extract(
        raw, url=url, include_comments=False, include_tables=True, favor_precision=True
    )
    meta = trafilatura.extract_metadata(raw)
    title = (meta.title if meta is not None and meta.title else "") or ""
    return title.strip(), (text or "").strip()


def _content_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _fetch_one(fetcher: _Fetcher, url: str, number: int, gathered: Sources) -> None:
    folder = fetcher.ctx.artifacts_dir / SOURCES_DIR
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        gathered.skipped.append(SkippedSource(url, "not an http(s) URL"))
        return
    rules = fetcher.robots_for(parsed)
    if isinstance(rules, str):
        gathered.skipped.append(SkippedSource(url, rules))
        return
    if not rules.can_fetch(ROBOTS_AGENT, url):
        gathered.skipped.append(SkippedSource(url, "disallowed for crawlers by its robots.txt"))
        return
    raw_path = folder / f"source-{number:02d}.body"
    fetched_at = utcnow().isoformat()
    try:
        exchange = fetcher.get(url, raw_path, fetcher.settings.http_max_body_bytes, "source")
    except RetriableError as exc:
        gathered.transient = True
        gathered.skipped.append(SkippedSource(url, _reason(exc)))
        return
    except TaskRejected as exc:
        gathered.skipped.append(SkippedSource(url, _reason(exc)))
        return
    except httpx.HTTPError as exc:
        gathered.transient = True
        gathered.skipped.append(SkippedSource(url, f"unreachable: {type(exc).__name__}: {exc}"))
        return
    final_url = str(exchange.hops[-1]["url"])
    kind = _content_type(exchange.content_type)
    problem = None
    if not 200 <= exchange.status_code < 300:
        gathered.transient = gathered.transient or exchange.status_code >= 500
        problem = f"HTTP {exchange.status_code} {exchange.reason}"
    elif kind not in PAGE_TYPES + TEXT_TYPES:
        problem = f"content type {kind or 'unknown'} is not a web page or plain text"
    if problem:
        raw_path.unlink(missing_ok=True)
        gathered.skipped.append(SkippedSource(url, problem))
        return
    raw = raw_path.read_bytes()
    title, text = _extract(raw, kind, final_url)
    if not text:
        raw_path.unlink(missing_ok=True)
        gathered.skipped.append(SkippedSource(url, "no main text could be extracted"))
        return
    truncated = len(text) > MAX_TEXT_CHARS
    text = text[:MAX_TEXT_CHARS] if truncated else text
    text_bytes = text.encode()
    text_path = folder / f"source-{number:02d}.txt"
    text_path.write_bytes(text_bytes)
    source = FetchedSource(
        number=number,
        url=url,
        final_url=final_url,
        title=title,
        fetched_at=fetched_at,
        raw_path=raw_path,
        raw_sha256=exchange.sha256,
        text_path=text_path,
        text_sha256=_sha256(text_bytes),
        text=text,
        truncated=truncated,
    )
    gathered.fetched.append(source)
    gathered.artifacts += _artifacts(source, kind, len(raw))


def _artifacts(source: FetchedSource, content_type: str, size: int) -> list[Artifact]:
    common: dict[str, Any] = {
        "source": source.number,
        "url": source.url,
        "final_url": source.final_url,
        "fetched_at": source.fetched_at,
        "raw_sha256": source.raw_sha256,
        "text_sha256": source.text_sha256,
    }
    return [
        Artifact(
            kind=ArtifactKind.FILE,
            uri=str(source.raw_path),
            sha256=source.raw_sha256,
            details={**common, "role": "source_body", "content_type": content_type, "bytes": size},
        ),
        Artifact(
            kind=ArtifactKind.FILE,
            uri=str(source.text_path),
            sha256=source.text_sha256,
            details={**common, "role": "source_text", "truncated": source.truncated},
        ),
    ]


def gather_sources(ctx: TaskContext, settings: TaskToolsResource, urls: list[str]) -> Sources:
    """Fetch each URL (in order, duplicates once) and keep those with main text, numbered
    from 1 in the order kept."""
    gathered = Sources()
    fetcher = _Fetcher(ctx, settings)
    try:
        for url in dict.fromkeys(u.strip() for u in urls if u.strip()):
            _fetch_one(fetcher, url, len(gathered.fetched) + 1, gathered)
    finally:
        fetcher.close()
    return gathered

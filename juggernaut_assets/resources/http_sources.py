"""`HttpSources`: how the trend and domain assets reach public HTTP APIs (httpx).

One client for every source: timeouts, retries with backoff on 429/5xx and transport errors
(honouring `Retry-After`, via tenacity), a per-host request interval, bounded concurrency and
an optional GitHub token. In replay mode the same client answers from bundled recordings
(`resources/replay.py`), so the code path is the one that runs live.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from urllib.parse import urlsplit

import dagster as dg
import httpx
import pydantic
import tenacity

from juggernaut_assets.lib.github_urls import PUBLIC_API, same_origin
from juggernaut_assets.lib.sources.base import Source, SourceRequest
from juggernaut_assets.resources.replay import ReplayTransport

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class SourceMode(StrEnum):
    LIVE = "live"
    REPLAY = "replay"


@dataclass(frozen=True)
class Fetched:
    """What one request gave: the final response (after retries) or the error that ended it."""

    request: SourceRequest
    status: int | None
    body: bytes
    attempts: int
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 400


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), if the response has one."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    return None


class _HostPacer:
    """At most one request per `interval` seconds to each host, shared by all threads."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + self.interval
        if start > now:
            time.sleep(start - now)


class HttpSources(dg.ConfigurableResource):
    """Keyless public HTTP sources for `market_trends` and `expired_domains`.

    - `mode`: `live` (default) or `replay` (bundled recorded responses, no network; bound from
      `JUGGERNAUT_SOURCE_MODE`). Asset metadata says which (`source_mode`).
    - `github_token`: optional, from `GITHUB_TOKEN`; raises GitHub's search rate limit. Never
      logged or put in metadata.
    - `github_api_url`: the GitHub API the token belongs to, from `JUGGERNAUT_GITHUB_API_URL`
      (default `https://api.github.com`). The token goes only with the GitHub source's
      requests to that origin (scheme, host, port); httpx drops it on a redirect elsewhere.
      The search itself asks public GitHub (or `base_urls["github"]`), so with a GitHub
      Enterprise token it runs keyless.
    - `base_urls`: per-source base URL overrides (`{"github": "http://127.0.0.1:8000/"}`), for
      mirrors and the tests' local servers.
    - `timeout_seconds`, `max_attempts`, `backoff_seconds` (first retry delay, doubling, with
      jitter), `max_wait_seconds` (a longer `Retry-After` ends the request with an error
      instead of blocking the run), `seconds_between_requests` per host, `max_concurrency`.
    """

    mode: SourceMode = SourceMode.LIVE
    github_token: str | None = None
    github_api_url: str = PUBLIC_API
    base_urls: dict[str, str] = pydantic.Field(default_factory=dict)
    user_agent: str = "juggernaut-assets/0.1 (trend and domain research; python-httpx)"
    contact: str | None = None
    """Appended to every User-Agent (Wikimedia asks for a way to reach the operator); bound from
    `JUGGERNAUT_HTTP_CONTACT`, e.g. an e-mail address or URL."""
    timeout_seconds: float = 20.0
    max_attempts: int = 4
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 60.0
    seconds_between_requests: float = 0.5
    max_concurrency: int = 8

    def base_url(self, source: str, default: str) -> str:
        return self.base_urls.get(source, default)

    @contextlib.contextmanager
    def client(self) -> Iterator[httpx.Client]:
        transport = ReplayTransport() if self.mode == SourceMode.REPLAY else None
        with httpx.Client(
            transport=transport,
            timeout=self.timeout_seconds,
            follow_redirects=True,
            headers={"User-Agent": self.user_agent},
        ) as client:
            yield client

    def _headers(self, request: SourceRequest) -> dict[str, str]:
        headers = dict(request.headers)
        agent = headers.get("User-Agent", self.user_agent)
        headers["User-Agent"] = f"{agent} contact: {self.contact}" if self.contact else agent
        if self._sends_github_token(request):
            headers["Authorization"] = f"Bearer {self.github_token}"
        return headers

    def _sends_github_token(self, request: SourceRequest) -> bool:
        """True for a GitHub source request to the origin the token belongs to."""
        return bool(
            self.github_token
            and request.source == Source.GITHUB
            and same_origin(request.url, self.github_api_url)
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            hinted = retry_after_seconds(outcome.result())
            if hinted is not None:
                return hinted
        backoff = tenacity.wait_exponential_jitter(
            multiplier=self.backoff_seconds, max=self.max_wait_seconds, jitter=self.backoff_seconds
        )
        return backoff(state)

    def _fetch(self, client: httpx.Client, pacer: _HostPacer, request: SourceRequest) -> Fetched:
        started = time.monotonic()
        host = urlsplit(request.url).netloc
        attempts = 0

        def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            pacer.wait(host)
            return client.get(request.url, headers=self._headers(request))

        def too_long(state: tenacity.RetryCallState) -> bool:
            return self._wait(state) > self.max_wait_seconds

        retrying = tenacity.Retrying(
            retry=(
                tenacity.retry_if_exception_type(httpx.TransportError)
                | tenacity.retry_if_result(lambda r: r.status_code in RETRY_STATUSES)
            ),
            stop=tenacity.stop_after_attempt(self.max_attempts) | too_long,
            wait=self._wait,
            retry_error_callback=lambda state: state.outcome.result(),
        )
        try:
            response = retrying(attempt)
        except httpx.HTTPError as exc:
            return Fetched(
                request,
                None,
                b"",
                attempts,
                time.monotonic() - started,
                error=f"{type(exc).__name__}: {exc}",
            )
        error = None
        if response.status_code >= 400:
            hint = retry_after_seconds(response)
            error = f"HTTP {response.status_code}" + (
                f" (Retry-After {hint:.0f} s)" if hint is not None else ""
            )
        return Fetched(
            request,
            response.status_code,
            response.content,
            attempts,
            time.monotonic() - started,
            error=error,
        )

    def fetch_all(self, requests: Sequence[SourceRequest]) -> list[Fetched]:
        """Fetch every request (bounded concurrency, paced per host); results in input order.

        Never raises for a failed request: its `Fetched.error` says what happened.
        """
        if not requests:
            return []
        pacer = _HostPacer(self.seconds_between_requests)
        with self.client() as client, ThreadPoolExecutor(max(1, self.max_concurrency)) as pool:
            return list(pool.map(lambda r: self._fetch(client, pacer, r), requests))

"""One HTTP exchange for the `http` tool: redirects followed hop by hop, the body streamed to a
file up to a cap.

Each hop is checked before it is sent (scheme, user-info, host allowlist) and connected through
the address guard (`guarded_http`), so an allowed host cannot redirect a task to a loopback or
unlisted one. A named credential's header goes only to hosts the credential names: it is
removed from a hop to any other host. Methods follow httpx's redirect rules (303 → GET, and
301/302 turn POST into GET).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import httpx
from upath import UPath

from juggernaut_assets.execution.outcome import RetriableError, TaskRejected
from juggernaut_assets.execution.tools.http_args import port_of, refusal_for_url
from juggernaut_assets.lib.artifact_store import make_dirs
from juggernaut_assets.lib.netguard import AddressRefused, HostAllowList
from juggernaut_assets.lib.redaction import scrub_url
from juggernaut_assets.resources.task_tools import MAX_BODY_ENV, HttpCredential

MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
PREVIEW_BYTES = 500


@dataclass(frozen=True)
class CredentialHeader:
    """A named credential resolved for one call: its spec and the header value to send."""

    name: str
    spec: HttpCredential
    value: str


@dataclass
class Exchange:
    """What came back: the final response's summary and the hops that led to it."""

    status_code: int
    reason: str
    content_type: str | None
    content_encoding: str | None
    bytes: int
    sha256: str
    preview: str
    hops: list[dict[str, object]] = field(default_factory=list)


def check_hop(url: httpx.URL, allowed: HostAllowList) -> str | None:
    """Why this hop may not be sent (None when it may): URL rules, then the allowlist."""
    problem = refusal_for_url(url)
    if problem:
        return problem
    if not allowed.permits(url.host, port_of(url)):
        return (
            f"host '{url.host}' is not in the http allowlist "
            f"(JUGGERNAUT_HTTP_ALLOWED_HOSTS: {', '.join(allowed.entries)})"
        )
    return None


def _set_credential(request: httpx.Request, credential: CredentialHeader | None) -> bool:
    """Put the credential on this hop if its host may receive it; True when it is sent."""
    if credential is None:
        return False
    request.headers.pop(credential.spec.header, None)
    if not credential.spec.sent_to(request.url.host, port_of(request.url)):
        return False
    request.headers[credential.spec.header] = credential.spec.header_value(credential.value)
    return True


def fetch(
    client: httpx.Client,
    request: httpx.Request,
    *,
    allowed: HostAllowList,
    credential: CredentialHeader | None,
    body_path: UPath,
    max_body_bytes: int,
    deadline_seconds: float,
) -> Exchange:
    """Send the request, follow up to MAX_REDIRECTS redirects, store the final body."""
    hops: list[dict[str, object]] = []
    deadline = time.monotonic() + deadline_seconds
    for hop in range(MAX_REDIRECTS + 1):
        where = "" if hop == 0 else f"redirect {hop} to {scrub_url(str(request.url))} refused: "
        problem = check_hop(request.url, allowed)
        if problem:
            raise TaskRejected(f"http step: {where}{problem}")
        sent_credential = _set_credential(request, credential)
        try:
            response = client.send(request, stream=True)
        except AddressRefused as exc:
            raise TaskRejected(f"http step: {where}{exc}") from None
        hops.append(
            {
                "method": request.method,
                "url": scrub_url(str(request.url)),
                "status_code": response.status_code,
                "credential_sent": sent_credential,
            }
        )
        try:
            if response.next_request is None:
                return _store_body(response, body_path, max_body_bytes, deadline, hops)
            request = response.next_request
        finally:
            response.close()
    raise TaskRejected(f"http step: more than {MAX_REDIRECTS} redirects; stopped")


def _store_body(
    response: httpx.Response,
    path: UPath,
    max_body_bytes: int,
    deadline: float,
    hops: list[dict[str, object]],
) -> Exchange:
    too_big = (
        f"http step: the response body is larger than the cap of {max_body_bytes} bytes "
        f"({MAX_BODY_ENV}); the download was stopped"
    )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body_bytes:
        raise TaskRejected(too_big)
    make_dirs(path.parent)
    digest = hashlib.sha256()
    size = 0
    preview = b""
    with path.open("wb") as out:
        for chunk in response.iter_raw(CHUNK_BYTES):
            size += len(chunk)
            if size > max_body_bytes:
                out.close()
                path.unlink(missing_ok=True)
                raise TaskRejected(too_big)
            if time.monotonic() > deadline:
                out.close()
                path.unlink(missing_ok=True)
                raise RetriableError("http step: the response took longer than the timeout")
            digest.update(chunk)
            out.write(chunk)
            if len(preview) < PREVIEW_BYTES:
                preview += chunk[: PREVIEW_BYTES - len(preview)]
    return Exchange(
        status_code=response.status_code,
        reason=response.reason_phrase,
        content_type=response.headers.get("content-type"),
        content_encoding=response.headers.get("content-encoding"),
        bytes=size,
        sha256=digest.hexdigest(),
        preview=_decode(preview, response.charset_encoding),
        hops=hops,
    )


def _decode(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")

"""The `http` tool: one HTTP request from a task, on the operator's terms.

- Where: public addresses only, unless the exact `host[:port]` is in the allowlist; a non-empty
  allowlist also limits which hosts may be called. Checked on every redirect hop, after DNS
  resolution, against the address actually connected to (`guarded_http`, `http_fetch`).
- What: arguments validated up front (`http_args`); the response body streamed to
  `step-{n}/response.body` under the task's artifacts, up to `http_max_body_bytes`.
- Retries: POST/PUT/PATCH/DELETE carry an `Idempotency-Key` derived from the task and the step,
  the same on every attempt, unless the step sets its own.
- Secrets: a step names a credential (`"credential": "acme"`); its value is read from the
  environment now, sent only to the credential's hosts, and redacted by value from everything
  stored.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import httpx
from upath import UPath

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import Artifact, RetriableError, TaskBlocked, TaskRejected
from juggernaut_assets.execution.tools.base import ToolOutput, redact
from juggernaut_assets.execution.tools.guarded_http import guarded_client
from juggernaut_assets.execution.tools.http_args import (
    HEADER_VALUE,
    HttpArgs,
    port_of,
    validate_http_args,
)
from juggernaut_assets.execution.tools.http_fetch import CredentialHeader, Exchange, fetch
from juggernaut_assets.lib.netguard import host_key
from juggernaut_assets.lib.redaction import MIN_SECRET_CHARS, redact_text, scrub_url
from juggernaut_assets.resources.task_tools import CREDENTIALS_ENV, CredentialError

if TYPE_CHECKING:
    from juggernaut_assets.execution.tools.toolbox import ToolBox

USER_AGENT = "juggernaut-assets (http tool)"
BODY_FILE = "response.body"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENT_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_NAMESPACE = uuid.UUID("5f2b8c1e-7d4a-4e0b-9a1c-3b6d2e8f4a70")
DOWNLOAD_DEADLINE_FACTOR = 4
"""A whole response must arrive within this many per-request timeouts (no slow drip)."""


def idempotency_key(task_id: str, step: int) -> str:
    """The same key for the same step of the same task, on every attempt."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{task_id}:{step}"))


def _credential(request: HttpArgs, url: httpx.URL, box: ToolBox) -> CredentialHeader | None:
    if request.credential is None:
        return None
    try:
        credentials = box.settings.credentials()
    except CredentialError as exc:
        raise TaskBlocked(str(exc)) from None
    name = request.credential
    spec = credentials.get(name)
    if spec is None:
        configured = ", ".join(sorted(credentials)) or "none"
        raise TaskBlocked(
            f"no credential named '{name}' in {CREDENTIALS_ENV} (configured: {configured})"
        )
    value = os.environ.get(spec.env, "")
    if not value:
        raise TaskBlocked(f"credential '{name}' reads its secret from {spec.env}, which is not set")
    if len(value) < MIN_SECRET_CHARS or not HEADER_VALUE.match(spec.header_value(value)):
        raise TaskBlocked(
            f"credential '{name}': the value of {spec.env} is not usable (it must be at least "
            f"{MIN_SECRET_CHARS} printable ASCII characters)"
        )
    if not spec.sent_to(url.host, port_of(url)):
        raise TaskRejected(
            f"http step: credential '{name}' may be sent only to {', '.join(spec.hosts)}, "
            f"not to {host_key(url.host, port_of(url))}"
        )
    if any(h.lower() == spec.header.lower() for h in request.headers):
        raise TaskRejected(f"http step: header '{spec.header}' is set by credential '{name}'")
    return CredentialHeader(name, spec, value)


def _headers(request: HttpArgs, box: ToolBox, step: int) -> dict[str, str]:
    headers = {**request.headers, "Accept-Encoding": "identity"}
    has_key = any(h.lower() == IDEMPOTENCY_HEADER.lower() for h in headers)
    if request.method in IDEMPOTENT_WRITES and not has_key:
        headers[IDEMPOTENCY_HEADER] = idempotency_key(box.task_id, step)
    return headers


def http_tool(args: dict[str, Any], box: ToolBox) -> ToolOutput:
    request, url = validate_http_args(args)
    ordinal = box.next_step()
    step = box.current_step if box.current_step is not None else ordinal
    credential = _credential(request, url, box)
    secrets = box.settings.secret_values() + ([credential.value] if credential else [])
    headers = _headers(request, box, step)
    body_path = box.artifacts_dir / f"step-{ordinal}" / BODY_FILE
    timeout = box.settings.http_timeout_seconds
    allowed = box.settings.allow_list()
    with guarded_client(allowed, USER_AGENT, timeout) as client:
        first = client.build_request(
            request.method,
            url,
            headers=headers,
            params=request.params or None,
            json=request.json_body,
        )
        try:
            exchange = fetch(
                client,
                first,
                allowed=allowed,
                credential=credential,
                body_path=body_path,
                max_body_bytes=box.settings.http_max_body_bytes,
                deadline_seconds=timeout * DOWNLOAD_DEADLINE_FACTOR,
            )
        except httpx.HTTPError as exc:
            raise RetriableError(redact_text(f"{type(exc).__name__}: {exc}", secrets)) from None
    return _output(request, first.url, exchange, headers, credential, body_path, secrets)


def _output(
    request: HttpArgs,
    url: httpx.URL,
    exchange: Exchange,
    headers: dict[str, str],
    credential: CredentialHeader | None,
    body_path: UPath,
    secrets: list[str],
) -> ToolOutput:
    summary = redact(
        {
            "status_code": exchange.status_code,
            "reason": exchange.reason,
            "content_type": exchange.content_type,
            "bytes": exchange.bytes,
            "sha256": exchange.sha256,
            "body_preview": exchange.preview,
            "redirects": exchange.hops[:-1],
            "final_url": exchange.hops[-1]["url"],
        },
        secrets,
    )
    ok = 200 <= exchange.status_code < 300
    error = redact_text(f"HTTP {exchange.status_code} {exchange.reason}", secrets)
    details = {
        "method": request.method,
        "url": scrub_url(str(url)),
        "body_path": str(body_path),
        "credential": credential.name if credential else None,
        "idempotency_key": httpx.Headers(headers).get(IDEMPOTENCY_HEADER),
        **summary,
        "content_encoding": exchange.content_encoding,
    }
    return ToolOutput(
        success=ok,
        result=summary,
        error=None if ok else error,
        retriable=exchange.status_code == 429 or exchange.status_code >= 500,
        artifacts=[
            Artifact(
                kind=ArtifactKind.HTTP_RESPONSE,
                uri=details["url"],
                sha256=exchange.sha256,
                details=redact(details, secrets),
            )
        ],
    )

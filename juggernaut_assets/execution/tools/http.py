"""The `http` tool: one HTTP request through httpx, within the host allowlist."""

from __future__ import annotations

import fnmatch
import hashlib
from typing import TYPE_CHECKING, Any, Literal

import pydantic

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import Artifact, TaskRejected
from juggernaut_assets.execution.tools.base import ToolOutput
from juggernaut_assets.tasks.payloads import Payload, PayloadError, validate_payload

if TYPE_CHECKING:
    from juggernaut_assets.execution.tools.toolbox import ToolBox

PREVIEW_CHARS = 500


class HttpArgs(Payload):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: pydantic.HttpUrl
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    params: dict[str, Any] = pydantic.Field(default_factory=dict)
    json_body: Any = pydantic.Field(default=None, alias="json")


def host_allowed(host: str, allowed: list[str]) -> bool:
    return not allowed or any(fnmatch.fnmatch(host, pattern) for pattern in allowed)


def http_tool(args: dict[str, Any], box: ToolBox) -> ToolOutput:
    try:
        request = validate_payload(HttpArgs, args)
    except PayloadError as exc:
        raise TaskRejected(f"http step: {exc}") from None
    host = request.url.host or ""
    if not host_allowed(host, box.settings.http_allowed_hosts):
        raise TaskRejected(f"host '{host}' is not in the http allowlist")
    response = box.http.request(
        request.method,
        str(request.url),
        headers=request.headers,
        params=request.params,
        json=request.json_body,
        timeout=box.settings.http_timeout_seconds,
    )
    body = response.content
    summary = {
        "status_code": response.status_code,
        "reason": response.reason_phrase,
        "content_type": response.headers.get("content-type"),
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "body_preview": response.text[:PREVIEW_CHARS],
    }
    ok = response.is_success
    return ToolOutput(
        success=ok,
        result=summary,
        error=None if ok else f"HTTP {response.status_code} {response.reason_phrase}",
        retriable=response.status_code == 429 or response.status_code >= 500,
        artifacts=[
            Artifact(
                kind=ArtifactKind.HTTP_RESPONSE,
                uri=str(request.url),
                sha256=summary["sha256"],
                details={"method": request.method, **summary},
            )
        ],
    )

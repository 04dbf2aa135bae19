"""The `slack` tool: post a message through a Slack incoming webhook.

The webhook URL is a secret (whoever has it can post): it is never stored or logged, and any
text Slack or an error sends back is redacted by value before it is recorded. The message
artifact carries the sha256 of the text, which its verifier compares with the recorded call.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import httpx
import pydantic

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import (
    Artifact,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.execution.tools.base import ToolOutput
from juggernaut_assets.execution.tools.guarded_http import quiet_http_loggers
from juggernaut_assets.lib.redaction import redact_text
from juggernaut_assets.tasks.payloads import Payload, PayloadError, validate_payload

if TYPE_CHECKING:
    from juggernaut_assets.execution.tools.toolbox import ToolBox

REPLY_CHARS = 200


class SlackArgs(Payload):
    text: str = pydantic.Field(min_length=1)
    blocks: list[dict[str, Any]] | None = None


def slack_tool(args: dict[str, Any], box: ToolBox) -> ToolOutput:
    try:
        message = validate_payload(SlackArgs, args)
    except PayloadError as exc:
        raise TaskRejected(f"slack step: {exc}") from None
    webhook = box.settings.slack_webhook_url
    if not webhook:
        raise TaskBlocked("SLACK_WEBHOOK_URL is not configured")
    secrets = box.settings.secret_values()
    body: dict[str, Any] = {"text": message.text}
    if message.blocks:
        body["blocks"] = message.blocks
    quiet_http_loggers()
    try:
        response = box.http.post(webhook, json=body, timeout=box.settings.http_timeout_seconds)
    except httpx.HTTPError as exc:
        raise RetriableError(redact_text(f"{type(exc).__name__}: {exc}", secrets)) from None
    reply = redact_text(response.text[:REPLY_CHARS], secrets)
    # Slack answers 200 with the body "ok"; anything else names the problem
    # ("invalid_payload", "no_text", "channel_not_found", …).
    ok = response.status_code == 200 and response.text.strip() == "ok"
    text_sha256 = hashlib.sha256(message.text.encode()).hexdigest()
    return ToolOutput(
        success=ok,
        result={"status_code": response.status_code, "body": reply, "sha256": text_sha256},
        error=None if ok else f"Slack answered {response.status_code}: {reply}",
        retriable=response.status_code == 429 or response.status_code >= 500,
        artifacts=[
            Artifact(
                kind=ArtifactKind.MESSAGE,
                sha256=text_sha256,
                details={"channel": "slack-webhook", "characters": len(message.text)},
            )
        ],
    )

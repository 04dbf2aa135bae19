"""The `slack` tool: post a message through a Slack incoming webhook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pydantic

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import Artifact, TaskBlocked, TaskRejected
from juggernaut_assets.execution.tools.base import ToolOutput
from juggernaut_assets.tasks.payloads import Payload, PayloadError, validate_payload

if TYPE_CHECKING:
    from juggernaut_assets.execution.tools.toolbox import ToolBox


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
    body: dict[str, Any] = {"text": message.text}
    if message.blocks:
        body["blocks"] = message.blocks
    response = box.http.post(webhook, json=body, timeout=box.settings.http_timeout_seconds)
    # Slack answers 200 with the body "ok"; anything else names the problem
    # ("invalid_payload", "no_text", "channel_not_found", …).
    ok = response.status_code == 200 and response.text.strip() == "ok"
    return ToolOutput(
        success=ok,
        result={"status_code": response.status_code, "body": response.text[:200]},
        error=None if ok else f"Slack answered {response.status_code}: {response.text[:200]}",
        retriable=response.status_code == 429 or response.status_code >= 500,
        artifacts=[
            Artifact(
                kind=ArtifactKind.MESSAGE,
                details={"channel": "slack-webhook", "characters": len(message.text)},
            )
        ],
    )

"""Settings of the tools that workflow tasks call (http, database, slack)."""

from __future__ import annotations

import dagster as dg
import pydantic


class TaskToolsResource(dg.ConfigurableResource):
    """Policy and credentials for task tools.

    - `slack_webhook_url`: Slack incoming-webhook URL, bound from `SLACK_WEBHOOK_URL`; without
      it, a `slack` step blocks its task with a clear reason. It is a secret: never logged,
      never stored in `tool_calls` or metadata.
    - `http_allowed_hosts`: hosts the `http` tool may call (`*.example.com` matches
      subdomains); empty means any host. Requests to other hosts fail the task.
    - `http_timeout_seconds`: per request.
    """

    slack_webhook_url: str | None = None
    http_allowed_hosts: list[str] = pydantic.Field(default_factory=list)
    http_timeout_seconds: float = 30.0

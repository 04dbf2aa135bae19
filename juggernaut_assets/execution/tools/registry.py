"""The one tool registry: name → tool. Workflow steps and handlers call tools by these names."""

from __future__ import annotations

from juggernaut_assets.execution.tools.base import Tool
from juggernaut_assets.execution.tools.database import database_tool
from juggernaut_assets.execution.tools.email import email_tool
from juggernaut_assets.execution.tools.http import http_tool
from juggernaut_assets.execution.tools.slack import slack_tool

TOOLS: dict[str, Tool] = {
    "http": http_tool,
    "database": database_tool,
    "slack": slack_tool,
    "email": email_tool,
}

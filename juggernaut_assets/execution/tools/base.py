"""What a tool is and what it reports; redaction of secrets in what is recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.lib.redaction import REDACTED, SECRET_KEY, redact

if TYPE_CHECKING:
    from juggernaut_assets.execution.tools.toolbox import ToolBox

__all__ = ["REDACTED", "SECRET_KEY", "Tool", "ToolOutput", "redact"]


@dataclass
class ToolOutput:
    """What a tool reports: success, a summary of the other side's answer, artifacts."""

    success: bool
    result: dict[str, Any]
    error: str | None = None
    external_id: str | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    retriable: bool = False


Tool = Callable[[dict[str, Any], "ToolBox"], ToolOutput]

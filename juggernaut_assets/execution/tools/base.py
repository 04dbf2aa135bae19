"""What a tool is and what it reports; redaction of secrets in recorded arguments."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from juggernaut_assets.execution.outcome import Artifact

if TYPE_CHECKING:
    from juggernaut_assets.execution.tools.toolbox import ToolBox

SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|cookie|webhook)", re.I
)
REDACTED = "***"


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


def redact(value: Any) -> Any:
    """A copy with the values of secret-looking keys replaced by `***`."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value

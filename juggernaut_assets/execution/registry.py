"""The one handler registry: every task type resolves to a handler, an alias, or nothing.

There is no fallback. A task type that resolves to nothing waits in `waiting_approval` with
"no handler for task type 'X'" until a person decides what to do with it.
"""

from __future__ import annotations

from enum import StrEnum


class HandlerName(StrEnum):
    ANALYSIS = "analysis"
    DATABASE = "database"
    SCAN = "scan"
    WORKFLOW = "workflow"
    CODE = "code"
    DOMAIN_ACQUISITION = "domain_acquisition"
    OUTREACH = "outreach"
    RESEARCH = "research"


ALIASES: dict[str, HandlerName] = {
    "audit": HandlerName.ANALYSIS,
    "reporting": HandlerName.ANALYSIS,
    "report": HandlerName.ANALYSIS,
    "metrics": HandlerName.ANALYSIS,
    "code_fix": HandlerName.CODE,
    "code_change": HandlerName.CODE,
    "code_implementation": HandlerName.CODE,
    "tool_execution": HandlerName.WORKFLOW,
}


def canonical_task_type(task_type: str) -> HandlerName | None:
    """The handler a task type runs on, following aliases; None when there is none."""
    normalized = (task_type or "").strip().lower()
    if normalized in HandlerName.__members__.values():
        return HandlerName(normalized)
    return ALIASES.get(normalized)


def is_executable(task_type: str) -> bool:
    """True when tasks of this type have a real handler (directly or through an alias)."""
    return canonical_task_type(task_type) is not None

"""Handlers: one module per kind of work. `HANDLERS` maps each handler name to its function."""

from __future__ import annotations

from collections.abc import Callable

from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.handlers.analysis import run_query_task
from juggernaut_assets.execution.handlers.code import run_code_task
from juggernaut_assets.execution.handlers.domain_acquisition import run_domain_acquisition
from juggernaut_assets.execution.handlers.outreach import run_outreach_task
from juggernaut_assets.execution.handlers.research import run_research_task
from juggernaut_assets.execution.handlers.scan import run_scan_task
from juggernaut_assets.execution.handlers.workflow import run_workflow_task
from juggernaut_assets.execution.outcome import HandlerResult
from juggernaut_assets.execution.registry import HandlerName

Handler = Callable[[TaskContext], HandlerResult]

HANDLERS: dict[HandlerName, Handler] = {
    HandlerName.ANALYSIS: run_query_task,
    HandlerName.DATABASE: run_query_task,
    HandlerName.SCAN: run_scan_task,
    HandlerName.WORKFLOW: run_workflow_task,
    HandlerName.CODE: run_code_task,
    HandlerName.DOMAIN_ACQUISITION: run_domain_acquisition,
    HandlerName.OUTREACH: run_outreach_task,
    HandlerName.RESEARCH: run_research_task,
}

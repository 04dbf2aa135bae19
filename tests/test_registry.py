from __future__ import annotations

import pytest

from juggernaut_assets.execution.handlers import HANDLERS
from juggernaut_assets.execution.registry import (
    ALIASES,
    HandlerName,
    canonical_task_type,
    is_executable,
)


@pytest.mark.parametrize("alias", ["code_fix", "code_change", "code_implementation"])
def test_code_aliases_route_to_code_handler(alias):
    assert canonical_task_type(alias) is HandlerName.CODE


@pytest.mark.parametrize("alias", ["audit", "reporting"])
def test_audit_and_reporting_route_to_analysis(alias):
    assert canonical_task_type(alias) is HandlerName.ANALYSIS


def test_task_type_is_matched_case_insensitively():
    assert canonical_task_type(" Analysis ") is HandlerName.ANALYSIS


@pytest.mark.parametrize("task_type", ["content_creation", "planning", "ai", ""])
def test_types_without_handler_resolve_to_nothing(task_type):
    assert canonical_task_type(task_type) is None
    assert not is_executable(task_type)


@pytest.mark.parametrize("task_type", ["research", "domain_acquisition", "outreach"])
def test_revenue_and_research_types_have_their_own_handlers(task_type):
    assert canonical_task_type(task_type) == HandlerName(task_type)


def test_every_handler_name_and_alias_has_exactly_one_handler():
    assert set(HANDLERS) == set(HandlerName)
    assert all(target in HANDLERS for target in ALIASES.values())
    assert not set(ALIASES) & {h.value for h in HandlerName}

"""What a handler gets to work with for one task."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from upath import UPath

from juggernaut_assets.execution.tools.toolbox import ToolBox
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.llm import LlmResource
from juggernaut_assets.resources.registrar import Registrar


@dataclass
class TaskContext:
    task_id: str
    task_type: str
    payload: Any
    engine: Engine
    artifacts_dir: UPath
    """This attempt's folder: local or in an object store (`lib/artifact_store.py`)."""
    tools: ToolBox
    github: GitHubResource
    log: logging.Logger | Any
    llm: LlmResource | None = None
    registrar: Registrar | None = None

"""The `ToolBox`: runs a registered tool for a task and records the call in `tool_calls`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from upath import UPath

from juggernaut_assets.db.models import ToolCall, new_id, utcnow
from juggernaut_assets.execution.outcome import RetriableError, TaskBlocked, TaskRejected
from juggernaut_assets.execution.tools.base import ToolOutput, redact
from juggernaut_assets.execution.tools.registry import TOOLS
from juggernaut_assets.resources.task_tools import TaskToolsResource
from juggernaut_assets.tasks.ownership import assert_holds


@dataclass
class ToolBox:
    """Runs registered tools for one task; every call is written to `tool_calls`."""

    engine: Engine
    task_id: str
    settings: TaskToolsResource
    artifacts_dir: UPath
    http: httpx.Client
    steps_run: int = 0
    worker: str | None = None
    """The run that holds the task; every call is fenced on it (see `tasks/ownership.py`)."""
    current_step: int | None = None
    """The workflow step being run (set by `call(..., step=n)`); keys stable per-step effects."""
    current_call_id: str | None = None
    """The `tool_calls` row of the call in progress (a tool may write its state into it)."""

    def fence(self) -> None:
        """Raise `LeaseLost` unless this run still holds the task under a fresh lease."""
        if self.worker is None:
            return
        with self.engine.begin() as conn:
            assert_holds(conn, self.task_id, self.worker)

    def next_step(self) -> int:
        """A fresh step number, so each step's files get their own directory."""
        self.steps_run += 1
        return self.steps_run

    def call(self, name: str, args: dict[str, Any], *, step: int | None = None) -> ToolOutput:
        self.current_step = step
        tool = TOOLS.get(name)
        if tool is None:
            raise TaskRejected(
                f"unknown tool '{name}'; registered tools: {', '.join(sorted(TOOLS))}"
            )
        call_id = self.current_call_id = new_id()
        started = utcnow()
        clock = time.perf_counter()
        with self.engine.begin() as conn:
            if self.worker is not None:
                assert_holds(conn, self.task_id, self.worker)
            conn.execute(
                ToolCall.__table__.insert().values(
                    id=call_id,
                    task_id=self.task_id,
                    tool_name=name,
                    arguments=redact(args, self.settings.secret_values()),
                    success=False,
                    started_at=started,
                )
            )
        try:
            output = tool(args, self)
        except (TaskBlocked, TaskRejected, RetriableError) as exc:
            output = ToolOutput(False, {}, error=str(exc))
            self._finish(call_id, output, clock)
            raise
        except httpx.HTTPError as exc:
            output = ToolOutput(False, {}, error=f"{type(exc).__name__}: {exc}", retriable=True)
        except Exception as exc:  # the call's row is finished whatever went wrong
            self._finish(
                call_id, ToolOutput(False, {}, error=f"{type(exc).__name__}: {exc}"), clock
            )
            raise
        self._finish(call_id, output, clock)
        for artifact in output.artifacts:
            artifact.external_id = artifact.external_id or call_id
        if not output.success:
            message = f"{name} failed: {output.error}"
            raise RetriableError(message) if output.retriable else TaskRejected(message)
        return output

    def _finish(self, call_id: str, output: ToolOutput, clock: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                ToolCall.__table__.update()
                .where(ToolCall.__table__.c.id == call_id)
                .values(
                    success=output.success,
                    result=redact(output.result, self.settings.secret_values()),
                    error_message=redact(output.error, self.settings.secret_values()),
                    external_id=output.external_id,
                    duration_ms=int((time.perf_counter() - clock) * 1000),
                    completed_at=utcnow(),
                )
            )

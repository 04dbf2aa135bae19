"""`scan`: not carried out by the executor.

A scan is its own asset run: `scan_tasks_sensor` claims scan tasks, requests the asset's run
through the instance's queue and settles the task when that run ends
(`juggernaut_assets/execution/scan.py`). `new_tasks_sensor` never claims scans, so a scan
reaches the executor only if its claim was interrupted before the hand-off to a run key (the
batch was then relaunched as an executor run). The executor does not materialise anything
itself: it gives the task back to the queue, where `scan_tasks_sensor` claims it again.
"""

from __future__ import annotations

from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import HandlerResult, RetriableError

NOT_IN_EXECUTOR = (
    "scan tasks are launched by scan_tasks_sensor as their own asset run, not by the "
    "executor; back to the queue for it"
)


def run_scan_task(ctx: TaskContext) -> HandlerResult:
    raise RetriableError(NOT_IN_EXECUTOR)

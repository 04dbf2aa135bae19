"""Drive the real `pr_state_sensor` and its `settle_pull_requests` runs in-process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from juggernaut_assets.jobs.pull_requests import settle_pull_requests
from juggernaut_assets.sensors.pr_state import pr_state_sensor


@dataclass
class Tick:
    result: dg.SensorResult | dg.SkipReason
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def skip_reason(self) -> str:
        if isinstance(self.result, dg.SkipReason):
            return self.result.skip_message or ""
        reason = self.result.skip_reason
        return (reason.skip_message or "") if reason else ""

    @property
    def requests(self) -> list[dg.RunRequest]:
        return (
            [] if isinstance(self.result, dg.SkipReason) else list(self.result.run_requests or [])
        )

    @property
    def actions(self) -> list[str]:
        return [
            action["action"]
            for request in self.requests
            for action in request.run_config["ops"]["act_on_pull_requests"]["config"]["actions"]
        ]


class PrDriver:
    """Evaluates the sensor with a cursor carried between ticks, as the daemon does."""

    def __init__(self, instance: dg.DagsterInstance, resources: dict[str, Any]) -> None:
        self.instance = instance
        self.resources = resources
        self.cursor: str | None = None

    def evaluate(self) -> Tick:
        context = dg.build_sensor_context(
            instance=self.instance, resources=self.resources, cursor=self.cursor
        )
        result = pr_state_sensor(context)
        if isinstance(result, dg.SensorResult) and result.cursor:
            self.cursor = result.cursor
        return Tick(result)

    def run(self, request: dg.RunRequest, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return settle_pull_requests.execute_in_process(
            run_config=request.run_config,
            resources=self.resources,
            instance=self.instance,
            tags=request.tags,
            raise_on_error=raise_on_error,
        )

    def tick(self) -> Tick:
        """One evaluation, then every run it asked for."""
        tick = self.evaluate()
        tick.runs = [self.run(request) for request in tick.requests]
        return tick

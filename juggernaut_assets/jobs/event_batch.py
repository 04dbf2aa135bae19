"""Writing a chunk of `task_runs` events in one storage write.

`context.log_event` stores each event on its own: on PostgreSQL a new connection, an INSERT, a
NOTIFY and an index transaction per event, measured at ~19 ms per task, more than half of a
batch's time. Dagster itself writes the materialisations of a multi-partition output in
batches (`DAGSTER_EVENT_BATCH_SIZE` and `DagsterEventBatchMetadata`, used by
`execute_step._process_asset_results_to_events`); this module sends the events of a chunk of
tasks the same way. It is the only place that reaches below `OpExecutionContext`'s public
methods (`get_step_execution_context`, `DagsterEvent.asset_materialization`), so a change in a
Dagster upgrade shows up here and in `tests/test_event_batch.py`.

Batching needs `DAGSTER_EVENT_BATCH_SIZE` in the run's environment; when it is not set the
run sets it for its own process (an operator's value is kept). A failed batch write falls
back, inside Dagster, to one write per event.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id

EVENT_BATCH_SIZE = 1_000
"""Events per storage write; a chunk of tasks is far smaller, so one chunk is one write."""

TaskEvent = dg.AssetMaterialization | dg.AssetObservation


def enable_event_batches() -> None:
    """Let this process's instance buffer events that carry batch metadata."""
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))


def log_events(context: dg.OpExecutionContext, events: Sequence[TaskEvent]) -> None:
    """Store `events` with one storage write per event type (materialisations, observations).

    The events are stored in order within each type; the UI orders them by time.
    """
    step = context.get_step_execution_context()
    for kind, make in (
        (dg.AssetMaterialization, DagsterEvent.asset_materialization),
        (dg.AssetObservation, DagsterEvent.asset_observation),
    ):
        same = [e for e in events if isinstance(e, kind)]
        batch_id = generate_event_batch_id()
        for number, event in enumerate(same, start=1):
            make(step, event, DagsterEventBatchMetadata(batch_id, number == len(same)))  # type: ignore[arg-type]

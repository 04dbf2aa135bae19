"""`task_runs`: one partition per task, one event per attempt's outcome.

Each task the platform carried out is reported here, keyed by its id. A task's page is the
**Events** tab filtered to its partition (Filter → Partition, or the link
`juggernaut tasks show ID` prints): the latest event shows its **reason** (its summary, or why
it is not done), title, type, state, attempts, dependencies and every artifact it produced,
each openable: a link where it has a URL, a preview where it is a file. The Partitions tab
shows only materialisations, so a task that did not complete counts there as Missing.

- A completed task, or one waiting on its pull request, is a **materialisation** with its
  verified artifacts.
- Every other ending (failed, blocked, waiting for approval, retrying) is an **observation**:
  nothing was produced. Its tags (`juggernaut/state`, `juggernaut/task_type`) and its first
  metadata entry, the reason, say why.
"""

import email
import email.policy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from upath import UPath

from juggernaut_assets.assets.governance import OWNERS, governance_tasks
from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.db.models import GovernanceTask
from juggernaut_assets.execution.outcome import Artifact, Ending, TaskOutcome
from juggernaut_assets.execution.scan import TASK_RUNS_KEY, task_page_url
from juggernaut_assets.lib.artifact_store import ArtifactLocationError, artifact_path

TASK_PARTITIONS = dg.DynamicPartitionsDefinition(name="task_runs")
PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 4
PREVIEW_MAX_BYTES = 2_000_000
"""Query results larger than this are linked, not previewed (the event is built in a sensor)."""
EMAIL_PREVIEW_LINES = 6

task_runs = dg.AssetSpec(
    key=TASK_RUNS_KEY,
    deps=[governance_tasks],
    partitions_def=TASK_PARTITIONS,
    group_name="tasks",
    kinds={"python"},
    owners=OWNERS,
    description=__doc__,
    metadata={"partition_retention": "newest tasks kept; see TaskQueueResource"},
)

_MATERIALIZED = (Ending.COMPLETED, Ending.AWAITING)


@dataclass(frozen=True)
class TaskDetails:
    """What the outcome does not carry: the task's title, state and dependencies."""

    title: str | None = None
    status: str | None = None
    depends_on: list[str] = field(default_factory=list)


def task_details(engine: Engine, task_ids: Iterable[str]) -> dict[str, TaskDetails]:
    """Title, status and dependencies of these tasks, read in one query."""
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        return {}
    t = GovernanceTask.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.id, t.c.title, t.c.status, t.c.depends_on).where(t.c.id.in_(ids))
        ).all()
    return {
        str(r.id): TaskDetails(r.title, r.status, [str(d) for d in (r.depends_on or [])])
        for r in rows
    }


def _where(artifact: Artifact) -> str | None:
    """The URL an operator opens for this artifact, when it has one."""
    if artifact.kind == ArtifactKind.ASSET_MATERIALIZATION and artifact.details.get("asset_url"):
        return str(artifact.details["asset_url"])
    for candidate in (artifact.uri, artifact.details.get("rdap_url")):
        if isinstance(candidate, str) and candidate.startswith(("http://", "https://")):
            return candidate
    return None


def _label(artifact: Artifact) -> str:
    d = artifact.details
    if artifact.kind == ArtifactKind.ASSET_MATERIALIZATION:
        part = f" [{d['partition']}]" if d.get("partition") else ""
        return f"{d.get('asset', 'asset')}{part}"
    if artifact.kind == ArtifactKind.QUERY_RESULT:
        return f"{d.get('row_count', '?')} row(s)"
    if artifact.kind == ArtifactKind.HTTP_RESPONSE:
        return f"{d.get('method', 'GET')} {d.get('status_code', '')}".strip()
    if artifact.kind == ArtifactKind.EMAIL_MESSAGE:
        return str(d.get("subject") or "e-mail")
    if d.get("domain"):
        return str(d["domain"])
    return artifact.external_id or Path(artifact.uri or "").name or artifact.kind.value


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 40 else text[:39] + "…"


def _artifact_table(artifacts: list[Artifact]) -> str:
    rows = ["| kind | artifact | verified |", "| --- | --- | --- |"]
    for a in artifacts:
        url = _where(a)
        label = _cell(_label(a))
        shown = f"[{label}]({url})" if url else label
        rows.append(f"| {a.kind.value} | {shown} | {'yes' if a.verified else 'no'} |")
    return "\n".join(rows)


def _query_preview(path: UPath) -> dg.MetadataValue | None:
    """The first rows and columns of a stored query result, as a table."""
    try:
        if not path.is_file() or path.stat().st_size > PREVIEW_MAX_BYTES:
            return None
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict):
        return None
    columns = [str(c) for c in stored.get("columns") or []][:PREVIEW_COLUMNS]
    rows = stored.get("rows") or []
    if not columns or not isinstance(rows, list):
        return None
    records = []
    for row in rows[:PREVIEW_ROWS]:
        values = (
            row
            if isinstance(row, list)
            else [row.get(c) for c in columns]
            if isinstance(row, dict)
            else [row]
        )
        records.append(dg.TableRecord({c: _cell(v) for c, v in zip(columns, values, strict=False)}))
    schema = dg.TableSchema([dg.TableColumn(c, "string") for c in columns])
    return dg.MetadataValue.table(records, schema=schema)


def _email_preview(path: UPath) -> dg.MetadataValue | None:
    """Subject, recipient and first lines of a stored .eml file."""
    try:
        if not path.is_file():
            return None
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    except (OSError, ValueError):
        return None
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    lines = [line for line in text.splitlines() if line.strip()][:EMAIL_PREVIEW_LINES]
    quoted = "\n".join(f"> {line}" for line in lines)
    return dg.MetadataValue.md(
        f"**{message['subject'] or '(no subject)'}** to {message['to'] or '?'}\n\n{quoted}"
    )


def _preview(artifact: Artifact) -> dg.MetadataValue | None:
    """A look inside an artifact that is a file (or carries its own stored preview)."""
    if artifact.kind in (ArtifactKind.QUERY_RESULT, ArtifactKind.EMAIL_MESSAGE) and artifact.uri:
        try:
            path = artifact_path(artifact.uri)
        except ArtifactLocationError:
            return None
        read = _query_preview if artifact.kind == ArtifactKind.QUERY_RESULT else _email_preview
        return read(path)
    if artifact.kind == ArtifactKind.HTTP_RESPONSE and artifact.details.get("body_preview"):
        return dg.MetadataValue.text(str(artifact.details["body_preview"])[:500])
    return None


def _open(artifact: Artifact) -> dg.MetadataValue:
    url = _where(artifact)
    if url:
        return dg.MetadataValue.url(url)
    if artifact.uri:
        return dg.MetadataValue.path(artifact.uri)
    return dg.MetadataValue.text(artifact.external_id or "")


def _state(outcome: TaskOutcome) -> str:
    return str(outcome.next_status or outcome.ending)


def _metadata(outcome: TaskOutcome, task: TaskDetails) -> dict[str, Any]:
    done = outcome.ending in _MATERIALIZED
    metadata: dict[str, Any] = {
        "summary" if done else "reason": outcome.message or "(no message)",
        "title": task.title or "(untitled)",
        "task_type": outcome.task_type,
        "state": _state(outcome),
        "attempt": outcome.attempt,
        "duration_s": round(outcome.duration_s, 1),
    }
    if task.depends_on:
        metadata["depends_on"] = dg.MetadataValue.md(
            "\n".join(f"- [{d}]({task_page_url(d)})" for d in task.depends_on)
        )
    if outcome.artifacts:
        metadata["artifacts"] = dg.MetadataValue.md(_artifact_table(outcome.artifacts))
        for number, artifact in enumerate(outcome.artifacts, start=1):
            name = f"artifact_{number}_{artifact.kind.value}"
            metadata[name] = _open(artifact)
            preview = _preview(artifact)
            if preview is not None:
                metadata[f"{name}_preview"] = preview
    return metadata


def task_event(
    outcome: TaskOutcome, task: TaskDetails | None = None
) -> dg.AssetMaterialization | dg.AssetObservation:
    """The Dagster event that shows this outcome on the task's partition."""
    task = task or TaskDetails()
    event_type = dg.AssetMaterialization if outcome.ending in _MATERIALIZED else dg.AssetObservation
    tags = {"juggernaut/task_type": outcome.task_type, "juggernaut/state": _state(outcome)}
    return event_type(
        asset_key=task_runs.key,
        partition=outcome.task_id,
        description=task.title,
        metadata=_metadata(outcome, task),
        tags=tags,
    )

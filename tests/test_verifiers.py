"""Verifiers say no: a bad file or query artifact is rejected and the task is not completed.

(The http, message, materialisation and pull-request verifiers reject in test_http_tool.py,
test_scan_tasks.py and test_code_handler.py.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution import handlers
from juggernaut_assets.execution.outcome import Artifact, HandlerResult
from juggernaut_assets.execution.registry import HandlerName
from juggernaut_assets.tasks.create import add_task
from tests.queue_driver import drain, task_row


def _run_with(governance_db, instance, resources, monkeypatch, handler) -> str:
    monkeypatch.setitem(handlers.HANDLERS, HandlerName.ANALYSIS, handler)
    with governance_db.session() as s:
        task, _ = add_task(s, "analysis", {"sql": "SELECT 1"})
    drain(instance, resources)
    return task.id


def _rejected(db_url: str, task_id: str) -> str:
    row = task_row(db_url, task_id)
    assert (row.status, row.verification_status) == ("pending", "rejected")
    assert row.completed_at is None
    return row.error_message


def test_query_result_whose_row_count_does_not_match_its_file_is_rejected(
    governance_db, db_url, instance, resources, monkeypatch
):
    original = handlers.HANDLERS[HandlerName.ANALYSIS]

    def overclaiming(ctx):
        result = original(ctx)
        result.artifacts[0].details["row_count"] = 1_000
        return result

    task_id = _run_with(governance_db, instance, resources, monkeypatch, overclaiming)
    assert "claims 1000 row(s); its file says 1 and holds 1" in _rejected(db_url, task_id)


def test_query_result_file_that_is_not_a_result_is_rejected(
    governance_db, db_url, instance, resources, monkeypatch, tmp_path
):
    def forged(ctx):
        path = tmp_path / "forged.json"
        path.write_text(json.dumps({"row_count": 2, "rows": [[1]]}))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        artifact = Artifact(
            ArtifactKind.QUERY_RESULT, uri=str(path), sha256=digest, details={"row_count": 2}
        )
        return HandlerResult([artifact], "forged")

    task_id = _run_with(governance_db, instance, resources, monkeypatch, forged)
    assert "file says 2 and holds 1" in _rejected(db_url, task_id)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: Artifact(ArtifactKind.FILE, uri=None, sha256="0" * 64), "has no path"),
        (lambda p: Artifact(ArtifactKind.FILE, uri=str(p / "gone"), sha256="0" * 64), "not exist"),
        (lambda p: Artifact(ArtifactKind.FILE, uri=str(p / "f.txt")), "has no sha256"),
        (lambda p: Artifact(ArtifactKind.FILE, uri=str(p / "f.txt"), sha256="0" * 64), "sha256"),
    ],
)
def test_file_artifact_that_is_missing_or_altered_is_rejected(
    governance_db, db_url, instance, resources, monkeypatch, tmp_path, make, reason
):
    (tmp_path / "f.txt").write_text("the real content")

    def handler(ctx):
        return HandlerResult([make(Path(tmp_path))], "wrote a file")

    task_id = _run_with(governance_db, instance, resources, monkeypatch, handler)
    assert reason in _rejected(db_url, task_id)

from __future__ import annotations

from juggernaut_assets.tasks.create import add_task
from tests.queue_driver import drain, task_row


def test_analysis_task_completes_with_verified_query_artifact(
    governance_db, db_url, instance, resources
):
    with governance_db.session() as s:
        task, _ = add_task(s, "analysis", {"sql": "SELECT 1 AS one, 'x' AS label"})
    assert drain(instance, resources) == 1
    row = task_row(db_url, task.id)
    assert row.status == "completed", row.error_message
    assert row.verification_status == "verified"
    assert "query returned 1 row(s)" in row.completion_evidence

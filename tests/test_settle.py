from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from juggernaut_assets.db.models import GovernanceTask
from juggernaut_assets.tasks import settle
from juggernaut_assets.tasks.claim import claim_tasks
from juggernaut_assets.tasks.create import add_task
from juggernaut_assets.tasks.ownership import start_task, take_batch
from juggernaut_assets.tasks.rules import retry_delay

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _claimed(db, **kwargs):
    """A task claimed, taken by a run, and started by it (its first attempt)."""
    with db.session() as s:
        task, _ = add_task(s, "analysis", {"sql": "SELECT 1"}, **kwargs)
    batch = claim_tasks(db.engine, limit=1, batch_size=1, now=NOW).batches[0]
    take_batch(db.engine, batch.key, "run-1")
    start_task(db.engine, task.id, "dagster-run:run-1")
    return task.id, "dagster-run:run-1"


def _get(db, task_id):
    with db.session() as s:
        return s.get(GovernanceTask, task_id)


def test_retry_delay_is_exponential_and_capped():
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(50) == timedelta(hours=1)


def test_release_returns_task_to_queue_with_backoff(governance_db):
    task_id, worker = _claimed(governance_db)
    with governance_db.engine.begin() as conn:
        [released] = settle.release_for_retry(conn, [task_id], "boom", worker=worker, now=NOW)
    task = _get(governance_db, task_id)
    assert released.status == "pending"
    assert task.status == "pending" and task.assigned_worker is None
    assert task.error_message == "attempt 1 of 3 did not finish: boom"
    assert task.next_retry_at.replace(tzinfo=UTC) == NOW + timedelta(seconds=30)


def test_release_after_last_attempt_fails_the_task(governance_db):
    task_id, worker = _claimed(governance_db, max_attempts=1)
    with governance_db.engine.begin() as conn:
        settle.release_for_retry(conn, [task_id], "boom", worker=worker, now=NOW)
    task = _get(governance_db, task_id)
    assert task.status == "failed"
    assert task.error_message == "gave up after 1 attempt(s): boom"
    assert task.failure_reason == "boom"


def test_release_leaves_tasks_held_by_another_worker(governance_db):
    task_id, _ = _claimed(governance_db)
    with governance_db.engine.begin() as conn:
        assert settle.release_for_retry(conn, [task_id], "x", worker="dagster-run:other") == []
    assert _get(governance_db, task_id).status == "in_progress"


def test_approve_records_who_and_when_then_task_is_claimable(governance_db):
    with governance_db.session() as s:
        task, _ = add_task(s, "analysis", {"sql": "SELECT 1"}, requires_approval=True)
    claim_tasks(governance_db.engine, limit=5, batch_size=5)
    settle.approve(governance_db.engine, task.id, "ops-alice")
    approved = _get(governance_db, task.id)
    assert (approved.status, approved.approved_by) == ("pending", "ops-alice")
    assert approved.approved_at is not None
    assert claim_tasks(governance_db.engine, limit=5, batch_size=5).claimed == 1


def test_deny_cancels_with_reason(governance_db):
    with governance_db.session() as s:
        task, _ = add_task(s, "analysis", {"sql": "SELECT 1"}, requires_approval=True)
    claim_tasks(governance_db.engine, limit=5, batch_size=5)
    settle.deny(governance_db.engine, task.id, "ops-bob", "too expensive")
    denied = _get(governance_db, task.id)
    assert (denied.status, denied.error_message) == (
        "cancelled",
        "denied by ops-bob: too expensive",
    )


def test_transitions_refuse_the_wrong_state(governance_db):
    with governance_db.session() as s:
        task, _ = add_task(s, "analysis", {"sql": "SELECT 1"})
    with pytest.raises(settle.TransitionError, match="it is pending, not waiting_approval"):
        settle.approve(governance_db.engine, task.id, "x")
    with pytest.raises(settle.TransitionError, match="does not exist"):
        settle.retry(governance_db.engine, "00000000-0000-0000-0000-000000000000")


def test_retry_gives_a_blocked_task_a_fresh_budget(governance_db):
    task_id, worker = _claimed(governance_db, max_attempts=1)
    with governance_db.engine.begin() as conn:
        settle.release_for_retry(conn, [task_id], "boom", worker=worker)
    settle.retry(governance_db.engine, task_id)
    task = _get(governance_db, task_id)
    assert (task.status, task.attempt_count, task.error_message) == ("pending", 0, None)

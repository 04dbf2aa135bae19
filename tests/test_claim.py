from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from juggernaut_assets.db.models import GovernanceTask
from juggernaut_assets.tasks.claim import BATCH_WORKER_PREFIX, claim_tasks
from juggernaut_assets.tasks.create import add_task

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _add(db, task_type="analysis", created_minutes_ago=0, **kwargs):
    with db.session() as s:
        task, _ = add_task(s, task_type, {"sql": "SELECT 1"}, **kwargs)
        task.created_at = NOW - timedelta(minutes=created_minutes_ago)
    return task.id


def _task(db, task_id):
    with db.session() as s:
        return s.get(GovernanceTask, task_id)


def _claimed_ids(result):
    return [t for b in result.batches for t in b.task_ids]


def test_claims_in_priority_order_then_oldest_first(governance_db):
    low = _add(governance_db, priority="low", created_minutes_ago=50)
    crit_new = _add(governance_db, priority="critical", created_minutes_ago=1)
    crit_old = _add(governance_db, priority="critical", created_minutes_ago=9)
    background = _add(governance_db, priority="background", created_minutes_ago=99)
    normal = _add(governance_db, priority="normal", created_minutes_ago=5)
    high = _add(governance_db, priority="high", created_minutes_ago=2)
    medium = _add(governance_db, priority="medium", created_minutes_ago=3)
    result = claim_tasks(governance_db.engine, limit=10, batch_size=100, now=NOW)
    assert _claimed_ids(result) == [crit_old, crit_new, high, medium, normal, low, background]


def test_claim_marks_tasks_in_progress_with_batch_worker_and_no_attempt_yet(governance_db):
    """The attempt is counted when a run starts the task, not at claim (issue 8, defect 13)."""
    task_id = _add(governance_db)
    result = claim_tasks(governance_db.engine, limit=10, batch_size=10, now=NOW)
    task = _task(governance_db, task_id)
    assert task.status == "in_progress"
    assert task.assigned_worker == f"{BATCH_WORKER_PREFIX}{result.batches[0].key}"
    assert task.assigned_at is not None
    assert task.attempt_count == 0


def test_claim_cuts_batches_and_respects_limit(governance_db):
    ids = [_add(governance_db, created_minutes_ago=10 - i) for i in range(5)]
    result = claim_tasks(governance_db.engine, limit=4, batch_size=3, now=NOW)
    assert [len(b.task_ids) for b in result.batches] == [3, 1]
    assert _task(governance_db, ids[4]).status == "pending"


def test_task_waiting_for_retry_is_skipped_until_due(governance_db):
    task_id = _add(governance_db)
    with governance_db.session() as s:
        s.get(GovernanceTask, task_id).next_retry_at = NOW + timedelta(minutes=5)
    assert claim_tasks(governance_db.engine, limit=5, batch_size=5, now=NOW).claimed == 0
    later = NOW + timedelta(minutes=6)
    assert claim_tasks(governance_db.engine, limit=5, batch_size=5, now=later).claimed == 1


def test_dependencies_wait_block_or_release(governance_db):
    dep = _add(governance_db, created_minutes_ago=30)
    waiting = _add(governance_db, depends_on=[dep])
    missing = _add(governance_db, depends_on=["00000000-0000-0000-0000-000000000000"])
    not_an_id = _add(governance_db, depends_on=["task-7"])
    claim_tasks(governance_db.engine, limit=1, batch_size=5, now=NOW)
    assert _task(governance_db, waiting).status == "pending"
    assert _task(governance_db, missing).status == "blocked"
    assert "does not exist" in _task(governance_db, missing).error_message
    assert _task(governance_db, not_an_id).error_message == "dependency 'task-7' is not a task id"
    with governance_db.session() as s:
        s.get(GovernanceTask, dep).status = "completed"
    result = claim_tasks(governance_db.engine, limit=5, batch_size=5, now=NOW)
    assert _claimed_ids(result) == [waiting]


def test_failed_dependency_blocks_with_its_id(governance_db):
    dep = _add(governance_db)
    with governance_db.session() as s:
        s.get(GovernanceTask, dep).status = "failed"
    task_id = _add(governance_db, depends_on=[dep])
    claim_tasks(governance_db.engine, limit=5, batch_size=5, now=NOW)
    task = _task(governance_db, task_id)
    assert (task.status, task.error_message) == ("blocked", f"dependency {dep} is failed")


def test_unknown_type_and_approval_wait_for_a_person(governance_db):
    unknown = _add(governance_db, task_type="content_creation")
    gated = _add(governance_db, requires_approval=True, approval_reason="spends $20")
    assert claim_tasks(governance_db.engine, limit=5, batch_size=5, now=NOW).claimed == 0
    assert _task(governance_db, unknown).status == "waiting_approval"
    assert _task(governance_db, unknown).error_message == (
        "no handler for task type 'content_creation'"
    )
    assert (_task(governance_db, gated).status, _task(governance_db, gated).error_message) == (
        "waiting_approval",
        "spends $20",
    )


def test_task_committed_late_with_an_older_timestamp_is_still_claimed(governance_db):
    first = _add(governance_db, created_minutes_ago=1)
    assert _claimed_ids(claim_tasks(governance_db.engine, limit=5, batch_size=5, now=NOW)) == [
        first
    ]
    late = _add(governance_db, created_minutes_ago=60)
    assert _claimed_ids(claim_tasks(governance_db.engine, limit=5, batch_size=5, now=NOW)) == [late]


def test_concurrent_claimers_never_take_the_same_task(governance_db):
    ids = {_add(governance_db, created_minutes_ago=i) for i in range(60)}
    results = []
    barrier = threading.Barrier(3)

    def claim():
        barrier.wait()
        results.append(claim_tasks(governance_db.engine, limit=40, batch_size=7, now=NOW))

    threads = [threading.Thread(target=claim) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [t for r in results for t in _claimed_ids(r)]
    assert len(claimed) == len(set(claimed)) == 60
    assert set(claimed) == ids
    with governance_db.engine.connect() as conn:
        statuses = conn.execute(sa.select(GovernanceTask.status).distinct()).scalars().all()
    assert statuses == ["in_progress"]

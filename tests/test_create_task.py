"""`add_task`: deduplicated by `dedupe_key`, also between concurrent writers."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
from sqlalchemy.orm import Session

from juggernaut_assets.db.models import GovernanceTask
from juggernaut_assets.tasks.create import add_task


def test_two_writers_racing_on_a_dedupe_key_create_one_task(governance_db):
    engine = governance_db.engine
    inside = threading.Barrier(2)
    outcomes: dict[str, tuple[str, bool]] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with Session(engine) as session, session.begin():
                task, created = add_task(session, "analysis", {"sql": "SELECT 1"}, dedupe_key="k")
                outcomes["first"] = (task.id, created)
                inside.wait()
                time.sleep(0.5)  # the second writer looks for the key while this is uncommitted
        except BaseException as exc:
            errors.append(exc)

    def second() -> None:
        try:
            inside.wait()
            with Session(engine) as session, session.begin():
                task, created = add_task(session, "analysis", {"sql": "SELECT 1"}, dedupe_key="k")
                outcomes["second"] = (task.id, created)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert outcomes["first"][1] is True and outcomes["second"][1] is False
    assert outcomes["first"][0] == outcomes["second"][0]
    with governance_db.session() as session:
        rows = session.scalars(sa.select(GovernanceTask).where(GovernanceTask.dedupe_key == "k"))
        assert [t.id for t in rows] == [outcomes["first"][0]]


def test_added_task_is_a_pending_orm_row_with_its_fields(governance_db):
    with governance_db.session() as session:
        task, created = add_task(
            session,
            "analysis",
            {"sql": "SELECT 1"},
            priority="high",
            dedupe_key="fields",
            metadata={"experiment_id": "e"},
            max_attempts=5,
        )
        again, again_created = add_task(session, "analysis", {}, dedupe_key="fields")
        plain, plain_created = add_task(session, "analysis", {"sql": "SELECT 2"})
    assert isinstance(task, GovernanceTask) and (created, again_created, plain_created) == (
        True,
        False,
        True,
    )
    assert again is task and plain.id != task.id
    assert (task.status, task.priority, task.attempt_count, task.max_attempts) == (
        "pending",
        "high",
        0,
        5,
    )
    assert task.metadata_ == {"experiment_id": "e"} and task.created_at is not None

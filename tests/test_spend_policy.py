"""The spend policy on SQLite and PostgreSQL: reserve inside the budget check, charge, release."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.enums import SpendState
from juggernaut_assets.db.models import Experiment, SpendLedger, new_id, utcnow
from juggernaut_assets.execution import spend

CATEGORY = spend.SpendCategory.DOMAIN_REGISTRATION


def _experiment(engine, budget_limit, budget_spent=0.0):
    experiment_id = new_id()
    with engine.begin() as conn:
        conn.execute(
            Experiment.__table__.insert().values(
                id=experiment_id,
                name="flip test",
                status="running",
                budget_limit=budget_limit,
                budget_spent=budget_spent,
            )
        )
    return experiment_id


def _rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(SpendLedger.__table__).order_by("created_at")).all()


def _reserve(engine, amount, limit=50.0, task_id=None, **kwargs):
    return spend.reserve(
        engine,
        task_id=task_id or new_id(),
        category=CATEGORY,
        amount=amount,
        daily_limit_usd=limit,
        **kwargs,
    )


def test_reserve_charge_and_release_keep_one_row_per_task(governance_db):
    engine = governance_db.engine
    experiment_id = _experiment(engine, 30.0, 5.0)
    task_id = new_id()
    first = _reserve(engine, 12.99, task_id=task_id, experiment_id=experiment_id)
    again = _reserve(engine, 11.50, task_id=task_id, experiment_id=experiment_id)
    assert again.id == first.id and again.amount == 11.50 and again.state is SpendState.RESERVED
    charged = spend.charge(engine, first.id, external_id="4100001", amount=11.50)
    assert (charged.state, charged.external_id) == (SpendState.CHARGED, "4100001")
    assert spend.charge(engine, first.id, external_id="other", amount=99).external_id == "4100001"
    assert _reserve(engine, 11.50, task_id=task_id).id == first.id
    with engine.connect() as conn:
        spent = conn.execute(
            sa.select(Experiment.budget_spent).where(Experiment.id == experiment_id)
        ).scalar_one()
    assert spent == pytest.approx(16.50)
    assert spend.release(engine, first.id, "too late") is False
    assert [(r.state, r.amount) for r in _rows(engine)] == [("charged", 11.50)]


def test_daily_limit_counts_reserved_and_charged_amounts_of_this_utc_day(governance_db):
    engine = governance_db.engine
    now = utcnow()
    kept = _reserve(engine, 12.00, limit=30.0, now=now)
    given_back = _reserve(engine, 10.00, limit=30.0, now=now)
    assert spend.release(engine, given_back.id, "not bought")
    _reserve(engine, 25.00, limit=30.0, now=now - timedelta(days=1))
    spend.charge(engine, kept.id, external_id="1", amount=12.00)
    with pytest.raises(spend.SpendRefused, match=r"\$12.00 is already reserved or spent today"):
        _reserve(engine, 18.01, limit=30.0, now=now)
    assert _reserve(engine, 18.00, limit=30.0, now=now).amount == 18.00
    with pytest.raises(spend.SpendRefused, match="JUGGERNAUT_SPEND_LIMIT_USD_PER_DAY is 0"):
        _reserve(engine, 1.00, limit=0.0, now=now + timedelta(days=1))
    assert len(_rows(engine)) == 4


def test_experiment_budget_counts_what_other_tasks_hold_reserved(governance_db):
    engine = governance_db.engine
    experiment_id = _experiment(engine, 40.0, 10.0)
    _reserve(engine, 15.00, experiment_id=experiment_id)
    with pytest.raises(spend.SpendRefused, match=r"\$15.00 of its \$40.00 budget left"):
        _reserve(engine, 15.01, experiment_id=experiment_id)
    assert _reserve(engine, 15.00, experiment_id=experiment_id).state is SpendState.RESERVED
    unbudgeted = _experiment(engine, None)
    with pytest.raises(spend.SpendRefused, match="has no budget_limit"):
        _reserve(engine, 1.00, experiment_id=unbudgeted)
    with pytest.raises(spend.UnknownExperiment):
        _reserve(engine, 1.00, experiment_id=new_id())


def _race(engines, amount, limit, experiment_id):
    """Both engines reserve `amount` at the same moment; (reservation ids, refusals)."""
    start = threading.Barrier(len(engines))
    won: list[str] = []
    refused: list[str] = []

    def attempt(engine):
        start.wait(timeout=5)
        try:
            won.append(_reserve(engine, amount, limit=limit, experiment_id=experiment_id).id)
        except spend.SpendRefused as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=attempt, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return won, refused


@pytest.mark.parametrize("budget", ["daily", "experiment"])
def test_two_reservations_racing_for_the_last_of_the_budget_one_wins(db_url, budget):
    """Two threads, each with its own engine (its own connection), reserve at once: the
    budget covers one of them, and exactly one gets it, however often it is tried."""
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        for round_number in range(5):
            experiment_id = _experiment(engines[0], 20.0) if budget == "experiment" else None
            limit = 1000.0 if experiment_id else 20.0 + 12.0 * round_number
            won, refused = _race(engines, 12.00, limit, experiment_id)
            assert (len(won), len(refused)) == (1, 1), f"round {round_number}: {won} {refused}"
            left = "$8.00 of its $20.00 budget left" if experiment_id else "would exceed it"
            assert left in refused[0]
    finally:
        for engine in engines:
            engine.dispose()

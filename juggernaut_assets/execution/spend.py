"""The spend policy: every amount the platform commits to is a row of `spend_ledger`.

An amount is `reserved` in the same transaction that checks it against the budgets, then
`charged` (with the registrar's order id) or `released`. Two budgets apply:

- the daily limit (`JUGGERNAUT_SPEND_LIMIT_USD_PER_DAY`, all categories): what was reserved or
  charged by rows created this UTC day, plus the new amount, may not exceed it; 0 spends
  nothing;
- for a task linked to an experiment, its `budget_limit − budget_spent`, less what other
  tasks of the experiment hold reserved (a linked experiment without a `budget_limit` may not
  spend). `budget_spent` grows when a reservation is charged.

Reservations are serialised, so two acquisitions at once can never both take the last of a
budget: on PostgreSQL every reservation and charge first takes one transaction-scoped
advisory lock (and locks the experiment's row); on SQLite the engine opens every write
transaction with `BEGIN IMMEDIATE`, so there is one writer at a time.

A task holds at most one open reservation per category: a second attempt reuses it (its
amount follows the live price, checked again), and a charged one is never charged twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from juggernaut_assets.db.enums import SpendState
from juggernaut_assets.db.models import Experiment, SpendLedger, new_id, utcnow
from juggernaut_assets.tasks.ownership import assert_holds

L = SpendLedger.__table__
E = Experiment.__table__
SPEND_LOCK_KEY = 0x4A55_5350
"""The PostgreSQL advisory lock every spend decision takes (`pg_advisory_xact_lock`)."""
DAILY_LIMIT_VARIABLE = "JUGGERNAUT_SPEND_LIMIT_USD_PER_DAY"
_OPEN = (SpendState.RESERVED.value, SpendState.CHARGED.value)


class SpendCategory(StrEnum):
    DOMAIN_REGISTRATION = "domain_registration"


class SpendRefused(Exception):
    """A budget does not allow the amount; the message says which and by how much."""


class UnknownExperiment(ValueError):
    """The task is linked to an experiment that does not exist."""


@dataclass(frozen=True)
class Reservation:
    id: str
    task_id: str | None
    experiment_id: str | None
    category: str
    amount: float
    currency: str
    state: SpendState
    external_id: str | None
    created_at: datetime | None
    details: dict[str, Any] = field(default_factory=dict)


def cents(amount: float | None) -> int:
    return round(float(amount or 0) * 100)


def usd(amount_cents: int) -> str:
    return f"${amount_cents / 100:,.2f}"


def utc_day(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day `now` falls in, as [start, end)."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SPEND_LOCK_KEY})


def _reservation(row: sa.Row) -> Reservation:
    return Reservation(
        id=str(row.id),
        task_id=str(row.task_id) if row.task_id else None,
        experiment_id=str(row.experiment_id) if row.experiment_id else None,
        category=row.category,
        amount=float(row.amount),
        currency=row.currency,
        state=SpendState(row.state),
        external_id=row.external_id,
        created_at=row.created_at,
        details=dict(row.details) if isinstance(row.details, dict) else {},
    )


def _open_reservation(conn: Connection, task_id: str, category: str) -> Reservation | None:
    row = conn.execute(
        sa.select(L)
        .where(L.c.task_id == task_id, L.c.category == category, L.c.state.in_(_OPEN))
        .order_by(L.c.created_at.desc())
        .limit(1)
    ).first()
    return _reservation(row) if row is not None else None


def open_reservation(engine: Engine, task_id: str, category: str) -> Reservation | None:
    """The task's reserved or charged row of this category, if it has one."""
    with engine.connect() as conn:
        return _open_reservation(conn, task_id, category)


def committed_today(conn: Connection, now: datetime, exclude_id: str | None = None) -> int:
    """Cents reserved or charged by rows created in `now`'s UTC day (all categories)."""
    start, end = utc_day(now)
    query = sa.select(sa.func.coalesce(sa.func.sum(L.c.amount), 0)).where(
        L.c.state.in_(_OPEN), L.c.created_at >= start, L.c.created_at < end
    )
    if exclude_id is not None:
        query = query.where(L.c.id != exclude_id)
    return cents(conn.execute(query).scalar_one())


def _check_daily(
    conn: Connection, amount: int, limit: int, now: datetime, exclude_id: str | None
) -> None:
    if limit <= 0:
        raise SpendRefused(f"no daily spend limit is set ({DAILY_LIMIT_VARIABLE} is 0)")
    committed = committed_today(conn, now, exclude_id)
    if committed + amount > limit:
        raise SpendRefused(
            f"the daily spend limit is {usd(limit)} ({DAILY_LIMIT_VARIABLE}); {usd(committed)} "
            f"is already reserved or spent today (UTC), so {usd(amount)} more would exceed it "
            f"by {usd(committed + amount - limit)}"
        )


def _check_experiment(
    conn: Connection, experiment_id: str, amount: int, exclude_id: str | None
) -> None:
    lock = conn.dialect.name == "postgresql"
    query = sa.select(E.c.name, E.c.budget_limit, E.c.budget_spent).where(E.c.id == experiment_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise UnknownExperiment(f"experiment {experiment_id} does not exist")
    label = f"experiment '{row.name}' ({experiment_id})"
    if row.budget_limit is None:
        raise SpendRefused(f"{label} has no budget_limit: set one to let its tasks spend")
    held = sa.select(sa.func.coalesce(sa.func.sum(L.c.amount), 0)).where(
        L.c.experiment_id == experiment_id, L.c.state == SpendState.RESERVED.value
    )
    if exclude_id is not None:
        held = held.where(L.c.id != exclude_id)
    reserved = cents(conn.execute(held).scalar_one())
    limit, spent = cents(row.budget_limit), cents(row.budget_spent)
    left = limit - spent - reserved
    if amount > left:
        raise SpendRefused(
            f"{label} has {usd(max(left, 0))} of its {usd(limit)} budget left ({usd(spent)} "
            f"spent, {usd(reserved)} reserved by other tasks), less than {usd(amount)}"
        )


def reserve(
    engine: Engine,
    *,
    task_id: str,
    category: str,
    amount: float,
    daily_limit_usd: float,
    experiment_id: str | None = None,
    currency: str = "USD",
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Reservation:
    """Reserve `amount` for the task if every budget allows it, in one serialised transaction.

    Returns the task's charged row unchanged when it already has one. Reuses its reserved row
    (checked again at the new amount, its own old amount not counted). Raises `SpendRefused`
    (nothing written) when a budget does not allow it, `UnknownExperiment` for a missing
    experiment.
    """
    wanted = cents(amount)
    if wanted <= 0:
        raise ValueError(f"cannot reserve {amount!r}: amounts are positive")
    now = now or utcnow()
    with engine.begin() as conn:
        _lock(conn)
        current = _open_reservation(conn, task_id, category)
        if current is not None and current.state is SpendState.CHARGED:
            return current
        exclude = current.id if current is not None else None
        _check_daily(conn, wanted, cents(daily_limit_usd), now, exclude)
        if experiment_id:
            _check_experiment(conn, experiment_id, wanted, exclude)
        if current is not None:
            merged = {**current.details, **(details or {})}
            conn.execute(
                L.update()
                .where(L.c.id == current.id)
                .values(
                    amount=wanted / 100,
                    experiment_id=experiment_id,
                    details=merged,
                    updated_at=now,
                )
            )
            return _reservation(conn.execute(sa.select(L).where(L.c.id == current.id)).one())
        reservation_id = new_id()
        conn.execute(
            L.insert().values(
                id=reservation_id,
                task_id=task_id,
                experiment_id=experiment_id,
                category=category,
                amount=wanted / 100,
                currency=currency,
                state=SpendState.RESERVED.value,
                details=details or {},
                created_at=now,
                updated_at=now,
            )
        )
        return _reservation(conn.execute(sa.select(L).where(L.c.id == reservation_id)).one())


def note(
    engine: Engine,
    reservation_id: str,
    changes: dict[str, Any],
    *,
    task_id: str | None = None,
    worker: str | None = None,
) -> None:
    """Merge `changes` into the reservation's details (e.g. that an order is being sent).

    With `worker`, first checks in the same transaction that the run still holds the task,
    so a side effect recorded here is only started by the task's owner.
    """
    with engine.begin() as conn:
        if worker is not None and task_id is not None:
            assert_holds(conn, task_id, worker)
        _lock(conn)
        row = conn.execute(sa.select(L.c.details).where(L.c.id == reservation_id)).one()
        current = dict(row.details) if isinstance(row.details, dict) else {}
        conn.execute(
            L.update()
            .where(L.c.id == reservation_id)
            .values(details={**current, **changes}, updated_at=utcnow())
        )


def charge(engine: Engine, reservation_id: str, *, external_id: str, amount: float) -> Reservation:
    """Mark the reservation spent on order `external_id` for `amount` (what was really paid),
    and add it to its experiment's `budget_spent`, in one transaction. Charging a charged row
    again changes nothing."""
    now = utcnow()
    with engine.begin() as conn:
        _lock(conn)
        row = conn.execute(sa.select(L).where(L.c.id == reservation_id)).one()
        current = _reservation(row)
        if current.state is SpendState.CHARGED:
            return current
        if current.state is SpendState.RELEASED:
            raise ValueError(f"reservation {reservation_id} was released; it cannot be charged")
        paid = cents(amount)
        conn.execute(
            L.update()
            .where(L.c.id == reservation_id)
            .values(
                state=SpendState.CHARGED.value,
                external_id=external_id,
                amount=paid / 100,
                details={**current.details, "charged_at": now.isoformat()},
                updated_at=now,
            )
        )
        if current.experiment_id:
            conn.execute(
                E.update()
                .where(E.c.id == current.experiment_id)
                .values(
                    budget_spent=sa.func.coalesce(E.c.budget_spent, 0) + paid / 100,
                    updated_at=now,
                )
            )
        return _reservation(conn.execute(sa.select(L).where(L.c.id == reservation_id)).one())


def release(engine: Engine, reservation_id: str, reason: str) -> bool:
    """Give a reserved amount back (nothing was bought); False when it was not reserved."""
    now = utcnow()
    with engine.begin() as conn:
        _lock(conn)
        row = conn.execute(sa.select(L).where(L.c.id == reservation_id)).one()
        current = _reservation(row)
        if current.state is not SpendState.RESERVED:
            return False
        conn.execute(
            L.update()
            .where(L.c.id == reservation_id, L.c.state == SpendState.RESERVED.value)
            .values(
                state=SpendState.RELEASED.value,
                details={**current.details, "released_because": reason},
                updated_at=now,
            )
        )
    return True

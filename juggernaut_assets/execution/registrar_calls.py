"""The registrar calls of one `domain_acquisition` task, each one `tool_calls` row, and what
is said when a step after the purchase fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from juggernaut_assets.execution.call_log import recorded_call
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import RetriableError, TaskBlocked
from juggernaut_assets.resources.registrar import (
    Availability,
    DnsRecord,
    Order,
    RegisteredDomain,
    Registrar,
    RegistrarError,
    RegistrarTransient,
    Registration,
)

TOOL_NAME = "registrar"
T = TypeVar("T")


def idempotency_key(task_id: str, reservation_id: str) -> str:
    """The same for every send of one reservation's order, new after a release."""
    return f"juggernaut-{task_id}-{reservation_id}"


@dataclass(frozen=True)
class Purchase:
    order_id: str
    amount: float
    reservation_id: str
    order_call_id: str | None
    recovered: bool
    """True when an earlier attempt's order was found in the account (not sent again)."""


class RegistrarCalls:
    """The task's registrar calls, each recorded as one `tool_calls` row."""

    def __init__(self, ctx: TaskContext, registrar: Registrar) -> None:
        self.ctx = ctx
        self.registrar = registrar

    def run(
        self,
        operation: str,
        arguments: dict[str, Any],
        call: Callable[[], T],
        summary: Callable[[T], dict[str, Any]],
        external_id: Callable[[T], str | None] = lambda _: None,
    ) -> tuple[T, str]:
        recorded = {"registrar": self.registrar.display_name, "operation": operation, **arguments}
        with recorded_call(self.ctx.engine, self.ctx.task_id, TOOL_NAME, recorded) as record:
            try:
                value = call()
            except RegistrarError as exc:
                record.result = {"status_code": exc.status, "error_type": type(exc).__name__}
                record.error = self.registrar.scrub(str(exc))
                raise
            record.result = summary(value)
            record.external_id = external_id(value)
        return value, record.call_id


def availability_summary(a: Availability) -> dict[str, Any]:
    return {
        "purchasable": a.purchasable,
        "premium": a.premium,
        "purchase_price": a.purchase_price,
        "renewal_price": a.renewal_price,
        "purchase_type": a.purchase_type,
    }


def domain_summary(d: RegisteredDomain | None) -> dict[str, Any]:
    if d is None:
        return {"in_account": False}
    return {
        "in_account": True,
        "expire_date": iso(d.expire_date),
        "create_date": iso(d.create_date),
    }


def registration_summary(r: Registration) -> dict[str, Any]:
    return {
        "order": r.order_id,
        "total_paid": r.total_paid,
        "expire_date": iso(r.domain.expire_date),
    }


def order_summary(o: Order | None) -> dict[str, Any]:
    if o is None:
        return {"found": False}
    return {"found": True, "order": o.id, "status": o.status, "final_amount": o.final_amount}


def record_summary(r: DnsRecord) -> dict[str, Any]:
    return {"id": r.id, "host": r.host, "type": r.type, "answer": r.answer, "ttl": r.ttl}


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@contextmanager
def bought(domain: str, purchase: Purchase, step: str) -> Iterator[None]:
    """Errors after the purchase: say that the domain is bought, and that retrying buys nothing."""
    where = f"{domain} is bought (order {purchase.order_id}), but {step} failed"
    try:
        yield
    except RegistrarTransient as exc:
        raise RetriableError(f"{where} for now ({exc}); the next attempt buys nothing") from None
    except RegistrarError as exc:
        raise TaskBlocked(f"{where}: {exc}; a retry buys nothing") from None

"""`domain_acquisition`: buy an approved domain through the registrar, within budget, once.

The order of things, each step a reason to stop:

1. The task must be approved by an operator (buying spends money), and a registrar must be
   configured (else `blocked`: "no registrar is configured").
2. An earlier attempt may have sent the order and not heard back (a timeout, a 5xx): then the
   registrar is asked first whether the domain is in the account and which order bought it;
   if so that is the purchase, charged to the reservation the earlier attempt made. An order
   whose outcome is unknown is never simply sent again.
3. Otherwise the live availability and price are checked: a taken name fails the task, a
   premium one too; a price over the payload's `max_price_usd`, or over what the daily limit
   or the linked experiment's budget has left, sends the task back to `waiting_approval` with
   the reason (an operator raises the limit and approves again, or denies it). The amount is
   reserved in `spend_ledger` in the transaction that checks the budgets.
4. The registration is sent once, with an idempotency key derived from the task and its
   reservation; its answer charges the reservation (402, insufficient funds: released and
   `blocked`; another refusal: released and `failed`).
5. The account's record of the domain is read back; with `JUGGERNAUT_FORSALE_TARGET` the
   domain is pointed at the for-sale page (`dns_record` artifacts); then RDAP must show the
   domain registered. If RDAP lags, the task goes back to the queue with the reason, to be
   looked at again (nothing is bought twice); it is never `completed` before RDAP shows it.

Every registrar call is one `tool_calls` row (`tool_name = registrar`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from juggernaut_assets.db.enums import ArtifactKind, SpendState
from juggernaut_assets.db.models import GovernanceTask, utcnow
from juggernaut_assets.execution import spend
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.domain_dns import point_at_target
from juggernaut_assets.execution.outcome import (
    Artifact,
    HandlerResult,
    NeedsApproval,
    RetriableError,
    TaskBlocked,
    TaskRejected,
)
from juggernaut_assets.execution.registrar_calls import (
    Purchase,
    RegistrarCalls,
    availability_summary,
    bought,
    domain_summary,
    idempotency_key,
    iso,
    order_summary,
    registration_summary,
)
from juggernaut_assets.execution.verify_domains import rdap_check
from juggernaut_assets.lib.sources.rdap import ascii_domain
from juggernaut_assets.resources.registrar import (
    NO_REGISTRAR_CONFIGURED,
    RegisteredDomain,
    RegistrarError,
    RegistrarNotAuthorised,
    RegistrarPaymentFailed,
    RegistrarRefused,
)
from juggernaut_assets.tasks.payloads import DomainAcquisitionPayload, validate_payload

CATEGORY = spend.SpendCategory.DOMAIN_REGISTRATION
YEARS = 1
NOT_APPROVED = (
    "buying a domain spends money: an operator approves each acquisition "
    "(`juggernaut tasks approve ID`)"
)


def _require_approval(ctx: TaskContext) -> None:
    with ctx.engine.connect() as conn:
        approved_at = conn.execute(
            sa.select(GovernanceTask.approved_at).where(GovernanceTask.id == ctx.task_id)
        ).scalar_one_or_none()
    if approved_at is None:
        raise NeedsApproval(NOT_APPROVED)


def _release(ctx: TaskContext, reservation: spend.Reservation | None, reason: str) -> None:
    if reservation is not None and reservation.state is SpendState.RESERVED:
        spend.release(ctx.engine, reservation.id, reason)


def _earlier_purchase(
    ctx: TaskContext, calls: RegistrarCalls, reservation: spend.Reservation, domain: str
) -> Purchase | None:
    """The order an earlier attempt sent without hearing back, if the registrar has it."""
    registrar = calls.registrar
    name = registrar.display_name
    try:
        record, _ = calls.run(
            "get_domain", {"domain": domain}, lambda: registrar.get_domain(domain), domain_summary
        )
        order, call_id = calls.run(
            "find_registration_order",
            {"domain": domain},
            lambda: registrar.find_registration_order(domain),
            order_summary,
            lambda o: o.id if o else None,
        )
    except RegistrarError as exc:
        raise RetriableError(
            f"an earlier attempt sent the order for {domain} and did not hear back; asking "
            f"{name} whether it was taken failed ({exc}): nothing is sent until it answers"
        ) from None
    if order is not None:
        paid = order.final_amount if order.final_amount else reservation.amount
        spend.charge(ctx.engine, reservation.id, external_id=order.id, amount=paid)
        spend.note(ctx.engine, reservation.id, {"order_call_id": call_id, "recovered": True})
        return Purchase(order.id, paid, reservation.id, call_id, recovered=True)
    if record is not None:
        raise RetriableError(
            f"{domain} is in the {name} account but no order for it is listed yet: the next "
            "attempt looks again (nothing is bought twice)"
        )
    spend.note(ctx.engine, reservation.id, {"earlier_order_not_taken": utcnow().isoformat()})
    return None


def _buy(
    ctx: TaskContext,
    calls: RegistrarCalls,
    payload: DomainAcquisitionPayload,
    domain: str,
    reservation: spend.Reservation | None,
) -> Purchase:
    registrar = calls.registrar
    name = registrar.display_name
    if registrar.spend_limit_usd_per_day <= 0:
        raise TaskBlocked(
            f"no spend limit is set ({spend.DAILY_LIMIT_VARIABLE} is 0), so nothing is bought: "
            f"set it, then `juggernaut tasks retry {ctx.task_id}`"
        )
    try:
        available, _ = calls.run(
            "check_availability",
            {"domain": domain},
            lambda: registrar.check_availability(domain),
            availability_summary,
        )
    except RegistrarNotAuthorised as exc:
        raise TaskBlocked(str(exc)) from None
    except RegistrarError as exc:
        raise RetriableError(f"could not check {domain} at {name}: {exc}") from None
    price = available.purchase_price
    if not available.purchasable:
        _release(ctx, reservation, "not available")
        raise TaskRejected(f"{domain} is not available to register at {name} (taken): not bought")
    if available.premium:
        _release(ctx, reservation, "premium")
        shown = spend.usd(spend.cents(price)) if price else "a premium price"
        raise TaskRejected(
            f"{domain} is a premium name at {name} ({shown}); premium names are not bought"
        )
    if price is None or price <= 0:
        raise RetriableError(f"{name} gave no price for {domain}: not bought")
    if spend.cents(price) > spend.cents(payload.max_price_usd):
        _release(ctx, reservation, "over the task's price")
        raise NeedsApproval(
            f"{domain} costs {spend.usd(spend.cents(price))} at {name}, over the task's "
            f"max_price_usd {spend.usd(spend.cents(payload.max_price_usd))}: not bought. Raise "
            "max_price_usd in the payload and approve it again, or deny it"
        )
    try:
        held = spend.reserve(
            ctx.engine,
            task_id=ctx.task_id,
            category=CATEGORY,
            amount=price,
            daily_limit_usd=registrar.spend_limit_usd_per_day,
            experiment_id=payload.experiment_id,
            details={"domain": domain, "registrar": name},
        )
    except spend.SpendRefused as exc:
        _release(ctx, reservation, "over budget")
        raise NeedsApproval(
            f"{domain} costs {spend.usd(spend.cents(price))} at {name}; not bought: {exc}. "
            "Raise the limit and approve it again, or deny it"
        ) from None
    except spend.UnknownExperiment as exc:
        _release(ctx, reservation, "unknown experiment")
        raise TaskRejected(f"{exc}: not bought") from None
    key = idempotency_key(ctx.task_id, held.id)
    spend.note(
        ctx.engine,
        held.id,
        {"order_sent_at": utcnow().isoformat(), "idempotency_key": key, "price": price},
        task_id=ctx.task_id,
        worker=ctx.tools.worker,
    )
    try:
        registration, call_id = calls.run(
            "create_domain",
            {"domain": domain, "purchase_price": price, "years": YEARS, "idempotency_key": key},
            lambda: registrar.register(
                domain,
                purchase_price=price,
                purchase_type=available.purchase_type,
                idempotency_key=key,
                years=YEARS,
            ),
            registration_summary,
            lambda r: r.order_id,
        )
    except RegistrarPaymentFailed as exc:
        spend.release(ctx.engine, held.id, "payment failed")
        raise TaskBlocked(
            f"{exc}: {domain} was not bought. Add funds to the {name} account (insufficient "
            f"funds), then `juggernaut tasks retry {ctx.task_id}`"
        ) from None
    except RegistrarNotAuthorised as exc:
        spend.release(ctx.engine, held.id, "credentials refused")
        raise TaskBlocked(str(exc)) from None
    except RegistrarRefused as exc:
        spend.release(ctx.engine, held.id, "registration refused")
        raise TaskRejected(f"{name} refused to register {domain}: {exc}") from None
    except RegistrarError as exc:
        raise RetriableError(
            f"the order for {domain} ended without a usable answer ({exc}); it may have been "
            f"taken, so it is not sent again: the next attempt first asks {name} whether "
            f"{domain} is in the account ({spend.usd(spend.cents(price))} stays reserved)"
        ) from None
    charged = spend.charge(
        ctx.engine, held.id, external_id=registration.order_id, amount=registration.total_paid
    )
    spend.note(ctx.engine, held.id, {"order_call_id": call_id})
    return Purchase(registration.order_id, charged.amount, held.id, call_id, recovered=False)


def _purchase(
    ctx: TaskContext, calls: RegistrarCalls, payload: DomainAcquisitionPayload, domain: str
) -> Purchase:
    reservation = spend.open_reservation(ctx.engine, ctx.task_id, CATEGORY)
    if reservation is not None and reservation.state is SpendState.CHARGED:
        return Purchase(
            str(reservation.external_id),
            reservation.amount,
            reservation.id,
            reservation.details.get("order_call_id"),
            recovered=bool(reservation.details.get("recovered")),
        )
    if reservation is not None and reservation.details.get("order_sent_at"):
        found = _earlier_purchase(ctx, calls, reservation, domain)
        if found is not None:
            return found
    return _buy(ctx, calls, payload, domain, reservation)


def _confirm(
    calls: RegistrarCalls, domain: str, purchase: Purchase
) -> tuple[RegisteredDomain, str]:
    registrar = calls.registrar
    with bought(domain, purchase, f"reading it back from {registrar.display_name}"):
        record, call_id = calls.run(
            "get_domain", {"domain": domain}, lambda: registrar.get_domain(domain), domain_summary
        )
    if record is None:
        raise RetriableError(
            f"{registrar.display_name} does not list {domain} in the account yet (order "
            f"{purchase.order_id}): the next attempt looks again (nothing is bought twice)"
        )
    expires = record.expire_date
    if expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) <= (
        datetime.now(UTC)
    ):
        raise TaskBlocked(f"{domain} is in the account but expired on {expires.date()}")
    return record, call_id


def run_domain_acquisition(ctx: TaskContext) -> HandlerResult:
    payload = validate_payload(DomainAcquisitionPayload, ctx.payload)
    domain = ascii_domain(payload.domain)
    if domain is None:
        raise TaskRejected(f"'{payload.domain}' is not a domain name: nothing to buy")
    _require_approval(ctx)
    registrar = ctx.registrar
    if registrar is None or not registrar.configured:
        raise TaskBlocked(NO_REGISTRAR_CONFIGURED)
    calls = RegistrarCalls(ctx, registrar)
    purchase = _purchase(ctx, calls, payload, domain)
    record, confirm_call = _confirm(calls, domain, purchase)
    dns = point_at_target(ctx, calls, domain, purchase) if registrar.forsale_target else []
    check = rdap_check(domain, registrar.rdap_bootstrap_url, registrar.timeout_seconds)
    name = registrar.display_name
    paid = spend.usd(spend.cents(purchase.amount))
    if not check.registered:
        why = check.error or f"{check.url} answers that it is not registered"
        raise RetriableError(
            f"{domain} is registered at {name} (order {purchase.order_id}, {paid} charged) "
            f"but RDAP does not show it yet ({why}): not completed; the next attempt looks "
            "again and buys nothing"
        )
    registration = Artifact(
        kind=ArtifactKind.DOMAIN_REGISTRATION,
        uri=check.url,
        external_id=purchase.order_id,
        details={
            "domain": domain,
            "registrar": name,
            "order_id": purchase.order_id,
            "amount_usd": purchase.amount,
            "expire_date": iso(record.expire_date),
            "create_date": iso(record.create_date),
            "rdap_url": check.url,
            "spend_ledger_id": purchase.reservation_id,
            "order_tool_call_id": purchase.order_call_id,
            "confirm_tool_call_id": confirm_call,
            "recovered_after_unknown_outcome": purchase.recovered,
        },
    )
    expires = record.expire_date.date().isoformat() if record.expire_date else "unknown"
    summary = (
        f"registered {domain} at {name}: order {purchase.order_id}, {paid}, expires {expires}; "
        "RDAP shows it registered"
    )
    if dns:
        summary += f"; pointed at {registrar.forsale_target} ({len(dns)} DNS records)"
    return HandlerResult(artifacts=[registration, *dns], summary=summary)

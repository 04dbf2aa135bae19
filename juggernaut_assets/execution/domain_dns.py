"""The optional last step of a domain flip: point the bought domain at the for-sale page
(`JUGGERNAUT_FORSALE_TARGET`) through the registrar's records API, as `dns_record` artifacts.
Records that already point there are reused, so a retry creates none twice."""

from __future__ import annotations

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.context import TaskContext
from juggernaut_assets.execution.outcome import Artifact, TaskBlocked
from juggernaut_assets.execution.registrar_calls import (
    Purchase,
    RegistrarCalls,
    bought,
    record_summary,
)
from juggernaut_assets.resources.registrar import forsale_records


def point_at_target(
    ctx: TaskContext, calls: RegistrarCalls, domain: str, purchase: Purchase
) -> list[Artifact]:
    """`dns_record` artifacts pointing `domain` at the for-sale target (existing ones reused)."""
    registrar = calls.registrar
    target = registrar.forsale_target or ""
    try:
        wanted = forsale_records(target, registrar.dns_ttl)
    except ValueError as exc:
        raise TaskBlocked(f"{domain} is bought (order {purchase.order_id}), but {exc}") from None
    artifacts = []
    with bought(domain, purchase, f"pointing it at {target}"):
        existing, _ = calls.run(
            "list_records",
            {"domain": domain},
            lambda: registrar.list_records(domain),
            lambda records: {"records": len(records)},
        )
        for host, kind, answer, ttl in wanted:
            record = next(
                (
                    r
                    for r in existing
                    if r.host == host
                    and r.type == kind
                    and r.answer.lower().rstrip(".") == answer.lower().rstrip(".")
                ),
                None,
            )
            call_id: str | None = None
            if record is None:
                ctx.tools.fence()
                record, call_id = calls.run(
                    "create_record",
                    {"domain": domain, "host": host, "type": kind, "answer": answer, "ttl": ttl},
                    lambda h=host, k=kind, a=answer, t=ttl: registrar.create_record(
                        domain, host=h, type=k, answer=a, ttl=t
                    ),
                    record_summary,
                    lambda r: r.id,
                )
            artifacts.append(
                Artifact(
                    kind=ArtifactKind.DNS_RECORD,
                    uri=registrar.record_url(domain, record.id),
                    external_id=record.id,
                    details={
                        "domain": domain,
                        "host": record.host,
                        "type": record.type,
                        "answer": record.answer,
                        "ttl": record.ttl,
                        "fqdn": record.fqdn,
                        "target": target,
                        "tool_call_id": call_id,
                    },
                )
            )
    return artifacts

"""Verification of `domain_registration` and `dns_record` artifacts, against the registrar and
RDAP, asked again (never against what the handler remembered).

A `domain_registration` checks out when the registrar lists the domain in the account with an
expiry date in the future, the artifact's order is a registration of that domain in the
account, and RDAP (the registry's public record, the artifact's `uri`) shows it registered.
A registration the registrar confirms but RDAP does not show yet is not verified: the handler
sends such a task back to the queue to be looked at again, never to `completed`.

A `dns_record` checks out when the registrar's zone holds that record (id, host, type and
answer as the artifact says).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from juggernaut_assets.db.enums import ArtifactKind
from juggernaut_assets.execution.outcome import Artifact
from juggernaut_assets.execution.verify import VerifyEnv, register_verifier
from juggernaut_assets.lib.sources import SourceFormatError, rdap
from juggernaut_assets.resources.registrar import Registrar, RegistrarError

RDAP_USER_AGENT = "juggernaut-assets (domain acquisition; RDAP)"


@dataclass(frozen=True)
class RegistrarVerifyEnv(VerifyEnv):
    """`VerifyEnv` with the registrar whose account the artifacts are checked against."""

    registrar: Registrar | None = None


@dataclass(frozen=True)
class RdapCheck:
    """What RDAP said about one name; `error` set means nothing is known."""

    url: str | None
    result: rdap.RdapResult | None
    error: str | None = None

    @property
    def registered(self) -> bool:
        return self.error is None and self.result is not None and self.result.registered


def rdap_check(domain: str, bootstrap_url: str, timeout_s: float) -> RdapCheck:
    """Look `domain` up in RDAP: the bootstrap's server for its TLD, then `domain/{name}`."""
    headers = {**rdap.HEADERS, "User-Agent": RDAP_USER_AGENT}
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=True, headers=headers) as client:
            boot = client.get(bootstrap_url)
            if boot.status_code != 200:
                return RdapCheck(None, None, f"RDAP bootstrap answered HTTP {boot.status_code}")
            url = rdap.rdap_url(rdap.parse_rdap_bootstrap(boot.content), domain)
            if url is None:
                return RdapCheck(None, None, f"no RDAP server for .{domain.rsplit('.', 1)[-1]}")
            answer = client.get(url)
    except httpx.HTTPError as exc:
        return RdapCheck(None, None, f"RDAP lookup failed ({type(exc).__name__}: {exc})")
    except SourceFormatError as exc:
        return RdapCheck(None, None, f"RDAP bootstrap unusable: {exc}")
    try:
        result = rdap.parse_rdap_domain(answer.status_code, answer.content)
    except SourceFormatError as exc:
        return RdapCheck(url, None, str(exc))
    return RdapCheck(url, result, result.error)


def _registrar(env: VerifyEnv) -> Registrar | None:
    registrar = getattr(env, "registrar", None)
    return registrar if registrar is not None and registrar.configured else None


def verify_domain_registration(artifact: Artifact, env: VerifyEnv) -> str | None:
    """None when the account holds the domain under the artifact's order and RDAP shows it."""
    registrar = _registrar(env)
    if registrar is None:
        return "no registrar access to check the registration against"
    domain = artifact.details.get("domain")
    order_id = artifact.external_id
    if not isinstance(domain, str) or not domain or not order_id:
        return "domain registration artifact names no domain or no order"
    name = registrar.display_name
    try:
        record = registrar.get_domain(domain)
        order = registrar.get_order(order_id) if record is not None else None
    except RegistrarError as exc:
        return f"could not ask {name} about {domain}: {exc}"
    if record is None:
        return f"{domain} is not in the {name} account"
    if record.expire_date is None:
        return f"{name} gives no expiry date for {domain}"
    expires = record.expire_date
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        return f"{domain} expired on {expires.date()} at {name}"
    if order is None:
        return f"order {order_id} is not in the {name} account"
    if not order.registers(domain):
        return f"order {order_id} at {name} is not a registration of {domain}"
    check = rdap_check(domain, registrar.rdap_bootstrap_url, registrar.timeout_seconds)
    if check.url is not None and artifact.uri != check.url:
        return f"the artifact links {artifact.uri}, but {domain}'s RDAP record is {check.url}"
    if check.error:
        return f"RDAP: {check.error}"
    if not check.registered:
        return f"RDAP does not show {domain} registered (yet)"
    assert check.result is not None
    if check.result.ldh_name and check.result.ldh_name != domain:
        return f"RDAP answered for {check.result.ldh_name}, not {domain}"
    artifact.details["rdap_statuses"] = check.result.normalised_statuses
    return None


def _host(host: str) -> str:
    name = host.strip().lower().rstrip(".")
    return "" if name == "@" else name


def verify_dns_record(artifact: Artifact, env: VerifyEnv) -> str | None:
    """None when the registrar's zone holds the record as the artifact describes it."""
    registrar = _registrar(env)
    if registrar is None:
        return "no registrar access to check the DNS record against"
    details = artifact.details
    domain, record_id = details.get("domain"), artifact.external_id
    if not isinstance(domain, str) or not domain or not record_id:
        return "dns record artifact names no domain or no record id"
    try:
        record = registrar.get_record(domain, record_id)
    except RegistrarError as exc:
        return f"could not ask {registrar.display_name} about the record: {exc}"
    if record is None:
        return f"record {record_id} of {domain} does not exist at {registrar.display_name}"
    wanted = (str(details.get("type", "")).upper(), str(details.get("answer", "")))
    if record.type != wanted[0] or _host(record.host) != _host(str(details.get("host", ""))):
        return (
            f"record {record_id} is {record.type} '{record.host}', not {wanted[0]} "
            f"'{details.get('host', '')}'"
        )
    if record.answer.lower().rstrip(".") != wanted[1].lower().rstrip("."):
        return f"record {record_id} answers {record.answer}, not {wanted[1]}"
    return None


register_verifier(ArtifactKind.DOMAIN_REGISTRATION, verify_domain_registration)
register_verifier(ArtifactKind.DNS_RECORD, verify_dns_record)

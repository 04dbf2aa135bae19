"""Buying domains: a small `Registrar` interface and its Name.com implementation (API v4).

The interface is what `domain_acquisition` needs and nothing more: the live availability and
price of a name, registering it, the account's record of a domain and of an order, and DNS
records. A second registrar (Porkbun, Cloudflare, …) implements the same methods.

Every failure is a `RegistrarError` subclass whose message a person can act on; a
`RegistrarTransient` on a purchase means its outcome is unknown (the request may have been
taken), so the caller must ask before it buys again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import dagster as dg
import httpx

from juggernaut_assets.lib.redaction import redact_text
from juggernaut_assets.lib.sources import rdap
from juggernaut_assets.resources.bounded_http import ResponseTooLarge, send_bounded

DEFAULT_URL = "https://api.name.com"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Name.com answers are small JSON documents; a larger body is refused unread."""
SANDBOX_URL = "https://api.dev.name.com"
IDEMPOTENCY_HEADER = "Idempotency-Key"
NO_REGISTRAR_CONFIGURED = (
    "no registrar is configured: set NAMECOM_USERNAME and NAMECOM_TOKEN (Name.com's sandbox: "
    f"JUGGERNAUT_REGISTRAR_URL={SANDBOX_URL} with the '-test' user name and token)"
)
USER_AGENT = "juggernaut-assets (domain acquisition; python-httpx)"
MAX_ORDER_PAGES = 20
ORDERS_PER_PAGE = 100


class RegistrarError(Exception):
    """The registrar did not do what was asked; the message is meant for a person."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RegistrarNotConfigured(RegistrarError):
    """No user name or token is bound."""


class RegistrarNotAuthorised(RegistrarError):
    """401/403: the user name or token is wrong, or the token may not do this."""


class RegistrarPaymentFailed(RegistrarError):
    """402: the account could not pay (Name.com: "Payment failed", "Insufficient Funds")."""


class RegistrarTransient(RegistrarError):
    """429, 5xx, a timeout or a broken connection. On a purchase the outcome is unknown."""


class RegistrarRefused(RegistrarError):
    """Another 4xx: the registrar will not do this as asked (name taken, price changed, …)."""


class RegistrarMalformed(RegistrarError):
    """A 2xx whose body is not what the API documents."""


@dataclass(frozen=True)
class Availability:
    """`checkAvailability` for one name; prices in USD for the minimum period (1 year)."""

    domain: str
    purchasable: bool
    premium: bool
    purchase_price: float | None
    renewal_price: float | None
    purchase_type: str | None


@dataclass(frozen=True)
class RegisteredDomain:
    """The account's record of a domain (`GET /v4/domains/{name}`)."""

    domain: str
    expire_date: datetime | None
    create_date: datetime | None
    nameservers: tuple[str, ...] = ()
    locked: bool | None = None
    autorenew: bool | None = None


@dataclass(frozen=True)
class Registration:
    """What a successful `POST /v4/domains` answered."""

    domain: RegisteredDomain
    order_id: str
    total_paid: float


@dataclass(frozen=True)
class OrderItem:
    name: str
    type: str
    status: str
    price: float | None


@dataclass(frozen=True)
class Order:
    """An order of the account (`GET /v4/orders/{id}`)."""

    id: str
    status: str
    final_amount: float | None
    currency: str
    create_date: str | None
    items: tuple[OrderItem, ...]

    def registers(self, domain: str) -> bool:
        """True when this order registered `domain` and was not failed or refunded."""
        if self.status.lower() in ("failed", "refunded"):
            return False
        return any(
            item.name.lower().rstrip(".") == domain
            and "registration" in item.type.lower()
            and item.status.lower() not in ("failed", "refunded")
            for item in self.items
        )


@dataclass(frozen=True)
class DnsRecord:
    """A DNS record of a zone at the registrar (host "" is the apex)."""

    id: str
    domain: str
    host: str
    type: str
    answer: str
    ttl: int | None
    fqdn: str | None = None


class Registrar(Protocol):
    """What `domain_acquisition` and its verifiers use; a second registrar implements this.

    Besides the calls, a registrar binding carries the spend limit, the for-sale target and
    the RDAP bootstrap that the acquisition and its verification follow.
    """

    spend_limit_usd_per_day: float
    forsale_target: str | None
    rdap_bootstrap_url: str
    timeout_seconds: float
    dns_ttl: int

    @property
    def display_name(self) -> str: ...

    @property
    def configured(self) -> bool: ...

    def scrub(self, text: str) -> str: ...

    def check_availability(self, domain: str) -> Availability: ...

    def register(
        self,
        domain: str,
        *,
        purchase_price: float,
        purchase_type: str | None,
        idempotency_key: str,
        years: int = 1,
    ) -> Registration: ...

    def get_domain(self, domain: str) -> RegisteredDomain | None: ...

    def get_order(self, order_id: str) -> Order | None: ...

    def find_registration_order(self, domain: str) -> Order | None: ...

    def list_records(self, domain: str) -> list[DnsRecord]: ...

    def get_record(self, domain: str, record_id: str) -> DnsRecord | None: ...

    def create_record(
        self, domain: str, *, host: str, type: str, answer: str, ttl: int
    ) -> DnsRecord: ...

    def record_url(self, domain: str, record_id: str) -> str: ...


class NameComRegistrar(dg.ConfigurableResource):
    """Name.com's API v4 (JSON over HTTPS, HTTP Basic) for `domain_acquisition`.

    - `url`: `JUGGERNAUT_REGISTRAR_URL` (default `https://api.name.com`; the sandbox, with its
      own `-test` user name and token, is `https://api.dev.name.com`).
    - `username`, `token`: `NAMECOM_USERNAME`, `NAMECOM_TOKEN`. The token is sent only in the
      `Authorization` header to `url` (redirects are not followed), never logged, never stored
      in `tool_calls`, artifacts or metadata. Without both, acquisitions are `blocked` with
      "no registrar is configured".
    - `spend_limit_usd_per_day`: `JUGGERNAUT_SPEND_LIMIT_USD_PER_DAY`, the most the platform
      may commit per UTC day (all categories of `spend_ledger`). 0 (the default) buys nothing.
    - `forsale_target`: `JUGGERNAUT_FORSALE_TARGET`, a host name, URL or IPv4 address; when
      set, an acquired domain is pointed at it (apex `ANAME`, `www` `CNAME`; `A` records for
      an address).
    - `rdap_bootstrap_url`: `JUGGERNAUT_RDAP_BOOTSTRAP_URL` (default IANA's `dns.json`): where
      a registration is looked up in RDAP before it counts as done.
    - `timeout_seconds` (per request), `dns_ttl` (seconds, Name.com's minimum is 300).
    """

    url: str = DEFAULT_URL
    username: str | None = None
    token: str | None = None
    spend_limit_usd_per_day: float = 0.0
    forsale_target: str | None = None
    rdap_bootstrap_url: str = rdap.BOOTSTRAP_URL
    timeout_seconds: float = 30.0
    dns_ttl: int = 300

    @property
    def display_name(self) -> str:
        return "Name.com"

    @property
    def configured(self) -> bool:
        return bool(self.username and self.token)

    def scrub(self, text: str) -> str:
        """`text` without the token (for errors and stored results)."""
        return redact_text(text, [self.token] if self.token else [])

    def check_availability(self, domain: str) -> Availability:
        """The live availability and 1-year price of one name."""
        body = self._call("POST", "/v4/domains:checkAvailability", {"domainNames": [domain]})
        results = body.get("results")
        if not isinstance(results, list):
            raise RegistrarMalformed("Name.com's availability answer has no results list")
        for result in results:
            if isinstance(result, dict) and _name(result.get("domainName")) == domain:
                return Availability(
                    domain=domain,
                    purchasable=result.get("purchasable") is True,
                    premium=result.get("premium") is True,
                    purchase_price=_number(result.get("purchasePrice")),
                    renewal_price=_number(result.get("renewalPrice")),
                    purchase_type=_text(result.get("purchaseType")),
                )
        return Availability(domain, False, False, None, None, None)

    def register(
        self,
        domain: str,
        *,
        purchase_price: float,
        purchase_type: str | None,
        idempotency_key: str,
        years: int = 1,
    ) -> Registration:
        """Buy `domain` at `purchase_price` (the price just checked; Name.com refuses another).

        The idempotency key goes in an `Idempotency-Key` header: Name.com's v4 API does not
        document one, a registrar that honours it answers a repeat with the first order.
        """
        request: dict[str, Any] = {
            "domain": {"domainName": domain},
            "purchasePrice": purchase_price,
            "years": years,
        }
        if purchase_type:
            request["purchaseType"] = purchase_type
        body = self._call(
            "POST", "/v4/domains", request, headers={IDEMPOTENCY_HEADER: idempotency_key}
        )
        order = body.get("order")
        if not isinstance(order, int | str) or isinstance(order, bool) or not str(order):
            raise RegistrarMalformed("Name.com's answer to the registration names no order")
        record = body.get("domain")
        if not isinstance(record, dict):
            raise RegistrarMalformed("Name.com's answer to the registration has no domain")
        paid = _number(body.get("totalPaid"))
        return Registration(
            _registered(record, domain), str(order), paid if paid is not None else purchase_price
        )

    def get_domain(self, domain: str) -> RegisteredDomain | None:
        """The account's record of `domain`; None when it is not in the account (404)."""
        body = self._call("GET", f"/v4/domains/{quote(domain)}", missing_ok=True)
        return None if body is None else _registered(body, domain)

    def get_order(self, order_id: str) -> Order | None:
        body = self._call("GET", f"/v4/orders/{quote(order_id)}", missing_ok=True)
        return None if body is None else _order(body)

    def find_registration_order(self, domain: str) -> Order | None:
        """The newest order of the account that registered `domain` (ListOrders, paged)."""
        found: list[Order] = []
        for order in self._orders():
            if order.registers(domain):
                found.append(order)
        return max(found, key=lambda o: (o.create_date or "", o.id)) if found else None

    def list_records(self, domain: str) -> list[DnsRecord]:
        records: list[DnsRecord] = []
        page: int | None = 1
        while page:
            body = self._call("GET", f"/v4/domains/{quote(domain)}/records?page={page}")
            raw = body.get("records") or []
            if not isinstance(raw, list):
                raise RegistrarMalformed("Name.com's record list is not a list")
            records += [_record(r, domain) for r in raw if isinstance(r, dict)]
            page = _next_page(body, page)
        return records

    def get_record(self, domain: str, record_id: str) -> DnsRecord | None:
        path = f"/v4/domains/{quote(domain)}/records/{quote(record_id)}"
        body = self._call("GET", path, missing_ok=True)
        return None if body is None else _record(body, domain)

    def create_record(
        self, domain: str, *, host: str, type: str, answer: str, ttl: int
    ) -> DnsRecord:
        request = {"host": host, "type": type, "answer": answer, "ttl": ttl}
        body = self._call("POST", f"/v4/domains/{quote(domain)}/records", request)
        if not isinstance(body.get("id"), int | str):
            raise RegistrarMalformed("Name.com's answer to the new record has no id")
        return _record(body, domain)

    def record_url(self, domain: str, record_id: str) -> str:
        return f"{self.url.rstrip('/')}/v4/domains/{quote(domain)}/records/{quote(record_id)}"

    def _orders(self) -> Iterator[Order]:
        page: int | None = 1
        while page and page <= MAX_ORDER_PAGES:
            body = self._call("GET", f"/v4/orders?perPage={ORDERS_PER_PAGE}&page={page}")
            raw = body.get("orders") or []
            if not isinstance(raw, list):
                raise RegistrarMalformed("Name.com's order list is not a list")
            for item in raw:
                if isinstance(item, dict):
                    yield _order(item)
            page = _next_page(body, page)

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        if not self.configured:
            raise RegistrarNotConfigured(NO_REGISTRAR_CONFIGURED)
        assert self.username is not None and self.token is not None
        timeout = httpx.Timeout(self.timeout_seconds, connect=min(self.timeout_seconds, 10.0))
        sent_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        try:
            with httpx.Client(
                timeout=timeout,
                follow_redirects=False,
                auth=httpx.BasicAuth(self.username, self.token),
            ) as client:
                response = send_bounded(
                    client,
                    method,
                    self.url.rstrip("/") + path,
                    max_bytes=MAX_RESPONSE_BYTES,
                    json=body,
                    headers=sent_headers,
                )
        except ResponseTooLarge as exc:
            raise RegistrarMalformed(
                f"Name.com's answer to {method} {_path(path)}: {exc}"
            ) from None
        except httpx.TimeoutException as exc:
            raise RegistrarTransient(
                f"Name.com did not answer {method} {_path(path)} within "
                f"{self.timeout_seconds:g} s ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise RegistrarTransient(
                f"could not reach Name.com for {method} {_path(path)} "
                f"({type(exc).__name__}: {self.scrub(str(exc))})"
            ) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 300:
            raise self._error(method, path, response)
        try:
            parsed = response.json()
        except ValueError:
            raise RegistrarMalformed(
                f"Name.com answered {method} {_path(path)} with a body that is not JSON",
                response.status_code,
            ) from None
        if not isinstance(parsed, dict):
            raise RegistrarMalformed(f"Name.com answered {method} {_path(path)} with non-object")
        return parsed

    def _error(self, method: str, path: str, response: httpx.Response) -> RegistrarError:
        status = response.status_code
        detail = f"HTTP {status}: {self.scrub(_message(response))}"
        where = f"{method} {_path(path)}"
        if status in (401, 403):
            return RegistrarNotAuthorised(
                f"Name.com refused the credentials for {where} ({detail}): check "
                "NAMECOM_USERNAME and NAMECOM_TOKEN (the sandbox needs its '-test' pair)",
                status,
            )
        if status == 402:
            return RegistrarPaymentFailed(f"Name.com could not take the payment ({detail})", status)
        if status in (408, 429) or status >= 500:
            return RegistrarTransient(f"Name.com answered {where} with {detail}", status)
        if 300 <= status < 400:
            return RegistrarRefused(
                f"Name.com redirected {where} ({status}): check JUGGERNAUT_REGISTRAR_URL", status
            )
        return RegistrarRefused(f"Name.com refused {where} ({detail})", status)


def forsale_records(target: str, ttl: int) -> list[tuple[str, str, str, int]]:
    """(host, type, answer, ttl) of the records that point a domain at the for-sale target.

    A host name (or the host of a URL) gets an apex `ANAME` (Name.com's alias at the zone
    apex, where a CNAME is not allowed) and a `www` `CNAME`; an IPv4 address gets two `A`
    records. Raises ValueError for a target that is neither.
    """
    text = target.strip()
    host = urlsplit(text).hostname if "://" in text else text.split("/", 1)[0].split(":", 1)[0]
    host = (host or "").strip().lower().rstrip(".")
    if not host:
        raise ValueError(f"JUGGERNAUT_FORSALE_TARGET {target!r} names no host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = rdap.ascii_domain(host)
        if name is None:
            raise ValueError(f"JUGGERNAUT_FORSALE_TARGET {target!r} is not a host name") from None
        return [("", "ANAME", name, ttl), ("www", "CNAME", name, ttl)]
    if address.version != 4:
        raise ValueError(f"JUGGERNAUT_FORSALE_TARGET {target!r}: only IPv4 addresses are used")
    return [("", "A", str(address), ttl), ("www", "A", str(address), ttl)]


def _path(path: str) -> str:
    return path.split("?", 1)[0]


def _message(response: httpx.Response) -> str:
    """Name.com's `{"message", "details"}` as one line."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        details = body.get("details")
        return str(body["message"])[:200] + (f": {str(details)[:200]}" if details else "")
    return str(body)[:300]


def _name(value: Any) -> str:
    return value.strip().lower().rstrip(".") if isinstance(value, str) else ""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _registered(body: dict[str, Any], domain: str) -> RegisteredDomain:
    nameservers = body.get("nameservers")
    return RegisteredDomain(
        domain=_name(body.get("domainName")) or domain,
        expire_date=_moment(body.get("expireDate")),
        create_date=_moment(body.get("createDate")),
        nameservers=tuple(n for n in nameservers if isinstance(n, str))
        if isinstance(nameservers, list)
        else (),
        locked=body.get("locked") if isinstance(body.get("locked"), bool) else None,
        autorenew=body.get("autorenewEnabled")
        if isinstance(body.get("autorenewEnabled"), bool)
        else None,
    )


def _order(body: dict[str, Any]) -> Order:
    items = body.get("orderItems") if isinstance(body.get("orderItems"), list) else []
    return Order(
        id=str(body.get("id", "")),
        status=str(body.get("status") or ""),
        final_amount=_number(body.get("finalAmount")),
        currency=str(body.get("currency") or "USD"),
        create_date=_text(body.get("createDate")),
        items=tuple(
            OrderItem(
                name=_name(item.get("name")),
                type=str(item.get("type") or ""),
                status=str(item.get("status") or ""),
                price=_number(item.get("price")),
            )
            for item in items
            if isinstance(item, dict)
        ),
    )


def _record(body: dict[str, Any], domain: str) -> DnsRecord:
    host = body.get("host")
    ttl = body.get("ttl")
    return DnsRecord(
        id=str(body.get("id", "")),
        domain=_name(body.get("domainName")) or domain,
        host="" if host in (None, "@") else str(host),
        type=str(body.get("type") or "").upper(),
        answer=str(body.get("answer") or ""),
        ttl=ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None,
        fqdn=_text(body.get("fqdn")),
    )


def _next_page(body: dict[str, Any], page: int) -> int | None:
    following = body.get("nextPage")
    if isinstance(following, int) and not isinstance(following, bool) and following > page:
        return following
    return None

"""Local stand-ins for a registrar (Name.com API v4) and the registry's RDAP service.

`NameComServer` speaks the v4 shapes the real client reads: HTTP Basic, `POST
/v4/domains:checkAvailability` (purchasable, premium, purchasePrice), `POST /v4/domains`
(`{domain, order, totalPaid}`, 402 "Payment failed: Insufficient Funds" when the balance is
short, 400 when the name is taken or the price is not the live one), `GET /v4/domains`,
`GET /v4/domains/{name}` (404 when not in the account), `GET /v4/orders[/{id}]`, and DNS
records (`GET`/`POST /v4/domains/{name}/records[/{id}]`). Errors are `{"message", "details"}`.

Failure modes for the purchase, taken from `fail_after_order`: `"5xx"` takes the order (the
domain is in the account, the balance is debited) and then answers 500; `"timeout"` takes the
order and holds the answer until `release_held()` (or `hold_seconds`), so the client times
out; `"huge"` takes the order and answers with a body over the client's size cap.
`fail_next(prefix, reply, method=…)` answers the next request whose path starts with
`prefix` (before authentication, as a failing front end would).

`RegistryRdap` is the registry: a bootstrap whose every TLD points at it and `domain/{name}`,
200 once the registrar published the name (unless `lagging`), else 404.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.local_server import LocalServer, Reply

USERNAME = "ops-test"
TOKEN = "namecom-test-token-0123456789"
DEFAULT_PRICE = 12.99


def _error(status: int, message: str, details: str | None = None) -> Reply:
    return Reply(status, {"message": message, "details": details})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class RegistryRdap(LocalServer):
    """The registry's RDAP: what the world sees of a registration."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.published: dict[str, dict[str, Any]] = {}
        self.lagging = False
        """While True, newly published names answer 404 (RDAP lags the registrar)."""
        self._hidden: set[str] = set()

    @property
    def bootstrap_url(self) -> str:
        return f"{self.url}/bootstrap/dns.json"

    def publish(self, domain: str, created: datetime, expires: datetime) -> None:
        with self._lock:
            self.published[domain] = {"created": created, "expires": expires}
            if self.lagging:
                self._hidden.add(domain)

    def catch_up(self) -> None:
        """RDAP now shows everything the registrar published."""
        with self._lock:
            self.lagging = False
            self._hidden.clear()

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        if path == "/bootstrap/dns.json":
            services = [[["com", "net", "org", "io", "ai"], [f"{self.url}/rdap/"]]]
            return Reply(200, {"version": "1.0", "services": services})
        if method == "GET" and path.startswith("/rdap/domain/"):
            name = path.removeprefix("/rdap/domain/").lower()
            with self._lock:
                entry = self.published.get(name)
                hidden = name in self._hidden
            if entry is None or hidden:
                return Reply(404, {"errorCode": 404, "title": "Not Found"})
            return Reply(
                200,
                {
                    "objectClassName": "domain",
                    "ldhName": name.upper(),
                    "status": ["client transfer prohibited"],
                    "events": [
                        {"eventAction": "registration", "eventDate": _iso(entry["created"])},
                        {"eventAction": "expiration", "eventDate": _iso(entry["expires"])},
                    ],
                },
                headers={"Content-Type": "application/rdap+json"},
            )
        return Reply(404, {"errorCode": 404, "title": "Not Found"})


@dataclass
class Account:
    balance: float = 100.0
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class NameComServer(LocalServer):
    """Name.com's API v4 as a local server, with one account."""

    def __init__(
        self,
        registry: RegistryRdap | None = None,
        *,
        balance: float = 100.0,
        username: str = USERNAME,
        token: str = TOKEN,
        hold_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.username, self.token = username, token
        self.account = Account(balance=balance)
        self.prices: dict[str, float] = {}
        self.premium: dict[str, float] = {}
        self.taken: set[str] = set()
        self.fail_after_order: deque[str] = deque()
        self.hold_seconds = hold_seconds
        self.requests: list[Received] = []
        self.orders_taken: list[dict[str, Any]] = []
        self._queued: dict[tuple[str | None, str], deque[Reply]] = {}
        self._held = threading.Event()
        self._lock = threading.RLock()
        self._ids = itertools.count(4_100_001)

    def price_of(self, domain: str) -> float:
        return self.premium.get(domain) or self.prices.get(domain, DEFAULT_PRICE)

    def fail_next(self, prefix: str, *replies: Reply, method: str | None = None) -> None:
        """Answer the next requests whose path starts with `prefix` (and use `method`)."""
        with self._lock:
            self._queued.setdefault((method, prefix), deque()).extend(replies)

    def release_held(self) -> None:
        self._held.set()

    def calls(self, method: str, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def __exit__(self, *exc: object) -> None:
        self._held.set()
        super().__exit__(*exc)

    def _authorised(self, headers: Message) -> bool:
        value = headers.get("Authorization") or ""
        if not value.startswith("Basic "):
            return False
        try:
            user, _, token = base64.b64decode(value[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, token) == (self.username, self.token)

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            return _error(400, "Invalid Argument", "the body is not JSON")
        url = urlsplit(path)
        with self._lock:
            self.requests.append(Received(method, path, dict(headers.items()), parsed))
            queued = next(
                (
                    q
                    for (verb, prefix), q in self._queued.items()
                    if q and url.path.startswith(prefix) and verb in (None, method)
                ),
                None,
            )
            if queued is not None:
                return queued.popleft()
        if not self._authorised(headers):
            return _error(401, "Unauthorized")
        if method in ("POST", "PUT", "PATCH") and "json" not in (headers.get("Content-Type") or ""):
            return _error(415, "The 'Content-Type' header must be 'application/json'")
        return self._route(method, url.path, parse_qs(url.query), parsed or {})

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Reply:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v4/domains:checkAvailability":
            return self._check(body)
        if method == "POST" and path == "/v4/domains":
            return self._create(body)
        if method == "GET" and path == "/v4/domains":
            with self._lock:
                return Reply(200, {"domains": list(self.account.domains.values())})
        if method == "GET" and path == "/v4/orders":
            return self._orders(query)
        if len(parts) == 3 and parts[:2] == ["v4", "orders"] and method == "GET":
            with self._lock:
                order = self.account.orders.get(int(parts[2])) if parts[2].isdigit() else None
            return Reply(200, order) if order else _error(404, "Not Found", "no such order")
        if len(parts) >= 3 and parts[:2] == ["v4", "domains"]:
            domain = parts[2].lower()
            with self._lock:
                record = self.account.domains.get(domain)
            if record is None:
                return _error(404, "Not Found", "The requested domain does not exist.")
            if len(parts) == 3 and method == "GET":
                return Reply(200, record)
            if len(parts) >= 4 and parts[3] == "records":
                return self._records(method, domain, parts[4:], body)
        return _error(404, "Not Found", f"{method} {path}")

    def _check(self, body: Any) -> Reply:
        names = body.get("domainNames") if isinstance(body, dict) else None
        if not isinstance(names, list) or not 1 <= len(names) <= 50:
            return _error(400, "Invalid Argument", "domainNames must list 1 to 50 names")
        results = []
        for raw in names:
            name = str(raw).lower()
            sld, _, tld = name.partition(".")
            with self._lock:
                unavailable = name in self.taken or name in self.account.domains
            if unavailable:
                results.append({"domainName": name, "sld": sld, "tld": tld, "purchasable": False})
                continue
            price = self.price_of(name)
            results.append(
                {
                    "domainName": name,
                    "sld": sld,
                    "tld": tld,
                    "purchasable": True,
                    "premium": name in self.premium,
                    "purchasePrice": price,
                    "purchaseType": "registration",
                    "renewalPrice": price,
                }
            )
        return Reply(200, {"results": results})

    def _create(self, body: Any) -> Reply:
        domain_obj = body.get("domain") if isinstance(body, dict) else None
        name = str((domain_obj or {}).get("domainName") or "").lower()
        if not name:
            return _error(400, "Invalid Argument", "'domainName' cannot be null")
        years = int(body.get("years") or 1)
        with self._lock:
            if name in self.taken or name in self.account.domains:
                return _error(400, "Invalid Argument", "Domain is not available")
            price = round(self.price_of(name) * years, 2)
            offered = body.get("purchasePrice")
            if (name in self.premium or offered is not None) and offered != price:
                return _error(400, "Invalid Argument", f"purchasePrice must be {price}")
            if self.account.balance < price:
                return _error(402, "Payment failed", "Insufficient Funds")
            order_id = next(self._ids)
            now = datetime.now(UTC)
            expires = now + timedelta(days=365 * years)
            record = {
                "domainName": name,
                "nameservers": ["ns1.name.com", "ns2.name.com"],
                "privacyEnabled": False,
                "locked": True,
                "autorenewEnabled": False,
                "createDate": _iso(now),
                "expireDate": _iso(expires),
                "renewalPrice": price,
            }
            self.account.balance = round(self.account.balance - price, 2)
            self.account.domains[name] = record
            self.account.orders[order_id] = {
                "id": order_id,
                "createDate": _iso(now),
                "status": "success",
                "currency": "USD",
                "authAmount": price,
                "finalAmount": price,
                "orderItems": [
                    {
                        "id": order_id * 10,
                        "name": name,
                        "tld": name.partition(".")[2],
                        "type": "registration",
                        "status": "success",
                        "duration": years,
                        "interval": "year",
                        "price": price,
                        "quantity": 1,
                    }
                ],
            }
            self.orders_taken.append({"domain": name, "order": order_id, "price": price})
            failure = self.fail_after_order.popleft() if self.fail_after_order else None
        if self.registry is not None:
            self.registry.publish(name, now, expires)
        if failure == "5xx":
            return _error(500, "Internal Server Error", "Something went wrong.")
        if failure == "timeout":
            self._held.wait(self.hold_seconds)
        if failure == "huge":
            return Reply(200, {"domain": record, "padding": "x" * (5 * 1024 * 1024)})
        return Reply(200, {"domain": record, "order": order_id, "totalPaid": price})

    def _orders(self, query: dict[str, list[str]]) -> Reply:
        per_page = int((query.get("perPage") or ["1000"])[0])
        page = int((query.get("page") or ["1"])[0])
        with self._lock:
            orders = sorted(self.account.orders.values(), key=lambda o: o["id"], reverse=True)
        chunk = orders[(page - 1) * per_page : page * per_page]
        answer: dict[str, Any] = {"orders": chunk, "totalCount": len(orders)}
        if page * per_page < len(orders):
            answer |= {"nextPage": page + 1, "lastPage": -(-len(orders) // per_page)}
        return Reply(200, answer)

    def _records(self, method: str, domain: str, rest: list[str], body: Any) -> Reply:
        with self._lock:
            zone = self.account.records.setdefault(domain, [])
            if method == "GET" and not rest:
                return Reply(200, {"records": list(zone), "totalCount": len(zone)})
            if method == "GET" and len(rest) == 1:
                found = next((r for r in zone if str(r["id"]) == rest[0]), None)
                return Reply(200, found) if found else _error(404, "Not Found", "no such record")
            if method == "POST" and not rest:
                kind = str(body.get("type") or "")
                if kind not in ("A", "AAAA", "ANAME", "CNAME", "MX", "NS", "SRV", "TXT"):
                    return _error(400, "Invalid Argument", f"unknown record type {kind!r}")
                host = "" if body.get("host") in (None, "@") else str(body["host"])
                if kind == "CNAME" and host == "":
                    return _error(400, "Invalid Argument", "CNAME records cannot be at the apex")
                record = {
                    "id": next(self._ids),
                    "domainName": domain,
                    "host": host,
                    "fqdn": f"{host + '.' if host else ''}{domain}.",
                    "type": kind,
                    "answer": str(body.get("answer") or ""),
                    "ttl": max(int(body.get("ttl") or 300), 300),
                }
                zone.append(record)
                return Reply(200, record)
        return _error(404, "Not Found", f"{method} records")

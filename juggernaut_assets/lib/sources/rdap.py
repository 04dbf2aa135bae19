"""RDAP: is a domain registered, and where is it in its lifecycle?

`parse_rdap_bootstrap` reads IANA's bootstrap file (RFC 9224) into TLD -> server base URL;
`rdap_url` picks the server for a name; `parse_rdap_domain` reads the server's answer
(RFC 9083). HTTP 404 means not registered. Rate limits and server errors are the HTTP
resource's to retry; if one reaches the parser anyway it comes back as `error`, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import idna

from juggernaut_assets.lib.sources.base import (
    Source,
    SourceFormatError,
    body_snippet,
    load_json,
    require_list,
    require_object,
    type_name,
)

SOURCE = Source.RDAP.value
BOOTSTRAP_URL = "https://data.iana.org/rdap/dns.json"
HEADERS = {"Accept": "application/rdap+json, application/json;q=0.9"}

EVENT_REGISTRATION = "registration"
EVENT_EXPIRATION = "expiration"
EVENT_LAST_CHANGED = "last changed"

EPP_TO_RDAP_STATUS = {
    "ok": "active",
    "inactive": "inactive",
    "addPeriod": "add period",
    "autoRenewPeriod": "auto renew period",
    "renewPeriod": "renew period",
    "transferPeriod": "transfer period",
    "redemptionPeriod": "redemption period",
    "pendingCreate": "pending create",
    "pendingDelete": "pending delete",
    "pendingRenew": "pending renew",
    "pendingRestore": "pending restore",
    "pendingTransfer": "pending transfer",
    "pendingUpdate": "pending update",
    "clientHold": "client hold",
    "serverHold": "server hold",
    "clientDeleteProhibited": "client delete prohibited",
    "clientRenewProhibited": "client renew prohibited",
    "clientTransferProhibited": "client transfer prohibited",
    "clientUpdateProhibited": "client update prohibited",
    "serverDeleteProhibited": "server delete prohibited",
    "serverRenewProhibited": "server renew prohibited",
    "serverTransferProhibited": "server transfer prohibited",
    "serverUpdateProhibited": "server update prohibited",
}


def normalise_status(status: str) -> str:
    """RFC 8056 spelling: 'redemptionPeriod' and 'Redemption Period' -> 'redemption period'."""
    text = status.strip()
    return EPP_TO_RDAP_STATUS.get(text, " ".join(text.split()).lower())


@dataclass(frozen=True)
class RdapResult:
    """What RDAP says about one name. When `error` is set, nothing else is known."""

    registered: bool
    statuses: list[str] = field(default_factory=list)
    expiration_date: date | None = None
    registration_date: date | None = None
    last_changed: date | None = None
    ldh_name: str | None = None
    error: str | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        """Known to be unregistered (a 404), as opposed to unknown because of an error."""
        return not self.registered and self.error is None

    @property
    def normalised_statuses(self) -> list[str]:
        return [normalise_status(s) for s in self.statuses]


def parse_rdap_bootstrap(body: bytes) -> dict[str, str]:
    """TLD -> RDAP base URL (https preferred, ending in '/') from IANA's dns.json."""
    data = require_object(SOURCE, load_json(SOURCE, 200, body, "bootstrap"))
    services = require_list(SOURCE, data, "services")
    bases: dict[str, str] = {}
    for entry in services:
        if not (isinstance(entry, list) and len(entry) >= 2):
            continue
        tlds, urls = entry[0], entry[1]
        if not (isinstance(tlds, list) and isinstance(urls, list)):
            continue
        links = [u for u in urls if isinstance(u, str) and u.startswith(("https://", "http://"))]
        if not links:
            continue
        base = next((u for u in links if u.startswith("https://")), links[0])
        base = base if base.endswith("/") else base + "/"
        for tld in tlds:
            if isinstance(tld, str) and tld.strip():
                bases.setdefault(tld.strip().lower().strip("."), base)
    if not bases:
        raise SourceFormatError(f"{SOURCE}: bootstrap lists no usable services")
    return bases


def ascii_domain(domain: str) -> str | None:
    """Lower-case A-label form ('Bücher.de' -> 'xn--bcher-kva.de'), or None if not a name."""
    name = domain.strip().lower().rstrip(".")
    if not name or "." not in name:
        return None
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def rdap_url(bootstrap: dict[str, str], domain: str) -> str | None:
    """`{base}domain/{name}` for the most specific TLD the bootstrap covers, else None."""
    name = ascii_domain(domain)
    if name is None:
        return None
    labels = name.split(".")
    for start in range(1, len(labels)):
        base = bootstrap.get(".".join(labels[start:]))
        if base:
            return f"{base}domain/{name}"
    return None


def _event_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


def _statuses(data: dict[str, Any]) -> list[str]:
    raw = data.get("status", [])
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list):
        raise SourceFormatError(f"{SOURCE}: status is a {type_name(raw)}, not a list")
    return [s for s in raw if isinstance(s, str) and s.strip()]


def _events(data: dict[str, Any]) -> tuple[dict[str, date], list[str]]:
    raw = data.get("events", [])
    if raw is None:
        return {}, []
    if not isinstance(raw, list):
        raise SourceFormatError(f"{SOURCE}: events is a {type_name(raw)}, not a list")
    dates: dict[str, date] = {}
    skipped: list[str] = []
    for index, event in enumerate(raw):
        if not isinstance(event, dict) or not isinstance(event.get("eventAction"), str):
            skipped.append(f"events[{index}] has no eventAction")
            continue
        action = event["eventAction"].strip().lower()
        when = _event_date(event.get("eventDate"))
        if when is None:
            skipped.append(f"events[{index}] ({action}): eventDate {event.get('eventDate')!r}")
            continue
        dates.setdefault(action, when)
    return dates, skipped


def parse_rdap_domain(status: int, body: bytes) -> RdapResult:
    """Read a domain lookup: 404 -> not registered; 200 -> the record; other -> `error`."""
    if status == 404:
        return RdapResult(registered=False)
    if not 200 <= status < 300:
        detail = body_snippet(body) or "empty body"
        return RdapResult(registered=False, error=f"HTTP {status}: {detail}")
    data = require_object(SOURCE, load_json(SOURCE, status, body, "domain"))
    kind = data.get("objectClassName")
    if kind is None and "errorCode" in data:
        if data["errorCode"] == 404:
            return RdapResult(registered=False)
        title = data.get("title") if isinstance(data.get("title"), str) else "no title"
        return RdapResult(registered=False, error=f"RDAP error {data['errorCode']!r}: {title}")
    if kind != "domain":
        raise SourceFormatError(f"{SOURCE}: objectClassName is {kind!r}, not 'domain'")
    ldh = data.get("ldhName")
    events, skipped = _events(data)
    return RdapResult(
        registered=True,
        statuses=_statuses(data),
        expiration_date=events.get(EVENT_EXPIRATION),
        registration_date=events.get(EVENT_REGISTRATION),
        last_changed=events.get(EVENT_LAST_CHANGED),
        ldh_name=ldh.lower() if isinstance(ldh, str) and ldh.strip() else None,
        skipped=skipped,
    )

"""Which hosts and addresses an outbound request from a task may reach (pure rules).

Public addresses only, unless the operator lists the exact `host[:port]`: an allowlist entry
without wildcards opens that host (on that port, when it names one) even where it resolves to a
loopback, private or link-local address; a wildcard entry (`*.example.com`) admits matching hosts
but never opens a non-public address. The judgement uses `ipaddress`' own properties, on every
address a host resolves to, so `localhost`, `0.0.0.0`, `[::1]`, IPv4-mapped IPv6 and cloud
metadata addresses are all refused by default.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_HOSTS_ENV = "JUGGERNAUT_HTTP_ALLOWED_HOSTS"
DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.I)
_WILDCARDS = re.compile(r"[*?\[]")


class AddressRefused(ValueError):
    """The request would reach an address tasks may not call; the message says why."""


def host_key(host: str, port: int) -> str:
    """`host:port`, with IPv6 literals in brackets (`[::1]:8080`)."""
    host = host.lower().rstrip(".")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_entry(entry: str) -> tuple[str, int | None]:
    """An allowlist entry as (host pattern, port or None)."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


@dataclass(frozen=True)
class HostAllowList:
    """The operator's `JUGGERNAUT_HTTP_ALLOWED_HOSTS`: which hosts may be called at all, and
    which exact hosts may resolve to non-public addresses."""

    entries: tuple[str, ...] = ()

    def permits(self, host: str, port: int) -> bool:
        """May `host:port` be called at all? (An empty list permits every host.)"""
        if not self.entries:
            return True
        host = host.lower().rstrip(".")
        for entry in self.entries:
            pattern, entry_port = _split_entry(entry)
            if entry_port is not None and entry_port != port:
                continue
            if fnmatch.fnmatchcase(host, pattern):
                return True
        return False

    def opens(self, host: str, port: int) -> bool:
        """Is `host:port` listed exactly (no wildcard), so non-public addresses are allowed?"""
        host = host.lower().rstrip(".")
        for entry in self.entries:
            pattern, entry_port = _split_entry(entry)
            if _WILDCARDS.search(pattern):
                continue
            if pattern == host and entry_port in (None, port):
                return True
        return False


def ambiguous_numeric_host(host: str) -> bool:
    """A host that a resolver reads as an IPv4 address but is not written as one canonically.

    `2130706433`, `0177.0.0.1` and `0x7f.1` all mean 127.0.0.1 to `inet_aton`; refusing them
    keeps the allowlist and the logs honest about where a request goes.
    """
    host = host.rstrip(".")
    if ":" in host:
        return False
    labels = host.split(".")
    if not _NUMERIC_LABEL.match(labels[-1]):
        return False
    try:
        return str(ipaddress.IPv4Address(host)) != host
    except ipaddress.AddressValueError:
        return True


def non_public_reason(address: IPAddress) -> str | None:
    """Why an address is not a public one (None when it is public)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            reason = non_public_reason(embedded)
            return f"IPv4-embedded {reason}" if reason else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata lives here)", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def vet_addresses(host: str, port: int, addresses: list[str], allowed: HostAllowList) -> None:
    """Refuse (AddressRefused) unless every resolved address may be called for `host:port`."""
    if allowed.opens(host, port):
        return
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = non_public_reason(address)
        if reason:
            key = host_key(host, port)
            article = "an" if reason[0] in "aeiouAEIOU" else "a"
            raise AddressRefused(
                f"{key} resolves to {address}, {article} {reason} address; tasks may call public "
                f"addresses only, unless the operator lists exactly '{key}' in {ALLOWED_HOSTS_ENV}"
            )

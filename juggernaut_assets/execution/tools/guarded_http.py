"""httpx clients for task tools: an address guard at connect time, quiet loggers.

The guard is an httpcore network backend: every TCP connection the client opens (the first
request and every redirect hop, since hops are followed one by one by the `http` tool) resolves
the host with `socket.getaddrinfo`, refuses it unless every resolved address may be called
(`lib.netguard`), and then connects to exactly those vetted addresses. There is no second
resolution between the check and the connection, so DNS rebinding cannot slip a private address
in; TLS still verifies the certificate against the host name (SNI is the URL's host).

The client never reads the environment (`trust_env=False`: no proxy that would be vetted in
place of the target, no `.netrc`), and never follows redirects on its own.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from juggernaut_assets.lib.netguard import HostAllowList, vet_addresses

NOISY_LOGGERS = ("httpx", "httpcore")
"""They log every request's full URL at INFO/DEBUG (a Slack webhook URL is a secret)."""


def quiet_http_loggers() -> None:
    """Keep httpx and httpcore below INFO, whatever the root logger's level."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolve, vet, and connect to the vetted address only."""

    def __init__(self, allowed: HostAllowList) -> None:
        self._allowed = allowed
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        vet_addresses(host, port, addresses, self._allowed)
        failure: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} resolved to no address")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable from tasks")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every guarded client (building one costs milliseconds)."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport over a connection pool that uses `GuardedBackend`."""

    def __init__(self, allowed: HostAllowList) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        # httpx has no public parameter for the network backend (encode/httpx#3180), so the
        # pool it built is replaced; if a later httpx renames it, fail closed.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("this httpx version cannot take the address guard; pin httpx")
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(), network_backend=GuardedBackend(allowed)
        )


def guarded_client(allowed: HostAllowList, user_agent: str, timeout: float) -> httpx.Client:
    """A client for task-chosen URLs: vetted addresses only, no redirects, no environment."""
    quiet_http_loggers()
    return httpx.Client(
        transport=GuardedTransport(allowed),
        headers={"User-Agent": user_agent},
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
    )


def plain_client(user_agent: str) -> httpx.Client:
    """The executor's client for operator-configured endpoints (Slack webhook): no redirects."""
    quiet_http_loggers()
    return httpx.Client(headers={"User-Agent": user_agent}, follow_redirects=False)

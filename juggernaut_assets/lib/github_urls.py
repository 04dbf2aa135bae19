"""Where GitHub's APIs live, derived from the REST base URL (pure)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

PUBLIC_API = "https://api.github.com"


def graphql_url_for(api_url: str) -> str:
    """The GraphQL endpoint that belongs to a REST base URL.

    `https://api.github.com` → `https://api.github.com/graphql`; GitHub Enterprise's
    `https://HOST/api/v3` → `https://HOST/api/graphql`; any other base → `{base}/graphql`
    (a local test server then serves both under one address).
    """
    base = api_url.rstrip("/")
    parts = urlsplit(base)
    if parts.path.endswith("/api/v3"):
        path = parts.path[: -len("/v3")] + "/graphql"
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return base + "/graphql"


def same_origin(url: str, api_url: str) -> bool:
    """True when `url` is served by the host (scheme, host and port) of `api_url`."""
    a, b = urlsplit(url), urlsplit(api_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)

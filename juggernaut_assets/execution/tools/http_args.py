"""The arguments of an `http` step, validated before anything is sent.

Every refusal is a `TaskRejected` (bad input no retry can fix) whose message names the field,
never its value: a header value may be a secret. Secrets written into the payload (an
`Authorization`-like header, a `?api_key=`-like parameter, user-info in the URL) are refused
with a pointer to named credentials, because the payload is stored raw and readable by tasks.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
import pydantic

from juggernaut_assets.execution.outcome import TaskRejected
from juggernaut_assets.lib.netguard import DEFAULT_PORTS, ambiguous_numeric_host
from juggernaut_assets.lib.redaction import is_secret_name, secret_query_params
from juggernaut_assets.resources.task_tools import CREDENTIALS_ENV
from juggernaut_assets.tasks.payloads import Payload, PayloadError, validate_payload

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
QueryValue = str | int | float | bool | None

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An RFC 9110 token."""
HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
"""Printable ASCII and tabs: no CR/LF, no control characters, nothing outside ASCII."""
MANAGED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "accept-encoding",
    }
)
"""Headers the tool sets itself; a step cannot override them."""
USE_CREDENTIALS = (
    f"put the secret in a named credential: {CREDENTIALS_ENV} "
    '(e.g. {"acme": {"env": "ACME_TOKEN", "hosts": ["api.acme.com"], '
    '"header": "Authorization", "scheme": "Bearer"}}) and give the step "credential": "acme"'
)


class HttpArgs(Payload):
    """`{"url": …, "method"?, "headers"?, "params"?, "json"?, "credential"?}`."""

    method: Method = "GET"
    url: str = pydantic.Field(min_length=1)
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    params: dict[str, QueryValue | list[QueryValue]] = pydantic.Field(default_factory=dict)
    json_body: Any = pydantic.Field(default=None, alias="json")
    credential: str | None = pydantic.Field(default=None, min_length=1)

    @pydantic.field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def port_of(url: httpx.URL) -> int:
    """The port a URL connects to (its scheme's default when it names none)."""
    return url.port or DEFAULT_PORTS.get(url.scheme, 0)


def refusal_for_url(url: httpx.URL) -> str | None:
    """Why a URL may not be requested at all (scheme, user-info, host spelling), or None."""
    if url.scheme not in DEFAULT_PORTS:
        return f"scheme '{url.scheme}' is not allowed (http and https only)"
    if url.userinfo:
        return f"the URL carries user-info (a user name or password): {USE_CREDENTIALS}"
    if not url.host:
        return "the URL has no host"
    if ambiguous_numeric_host(url.host):
        return f"host '{url.host}' is an ambiguous numeric address; write the address canonically"
    return None


def parse_url(text: str) -> httpx.URL:
    try:
        return httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise TaskRejected(f"http step: url is not a valid URL ({exc})") from None


def _check_headers(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise TaskRejected(
                f"http step: header name {name!r} is not a valid token (letters, digits, -_.)"
            )
        if name.lower() in MANAGED_HEADERS:
            raise TaskRejected(f"http step: header '{name}' is set by the tool, not by a step")
        if is_secret_name(name):
            raise TaskRejected(
                f"http step: header '{name}' carries a secret in the payload; {USE_CREDENTIALS}"
            )
        bad = next((i for i, ch in enumerate(value) if not HEADER_VALUE.match(ch)), None)
        if bad is not None:
            raise TaskRejected(
                f"http step: header '{name}' has a character that is not printable ASCII "
                f"(position {bad}); header values must be ASCII without CR/LF"
            )


def validate_http_args(args: dict[str, Any]) -> tuple[HttpArgs, httpx.URL]:
    """The validated arguments and the parsed URL, or a TaskRejected saying what is wrong."""
    try:
        request = validate_payload(HttpArgs, args)
    except PayloadError as exc:
        raise TaskRejected(f"http step: {exc}") from None
    url = parse_url(request.url)
    problem = refusal_for_url(url)
    if problem:
        raise TaskRejected(f"http step: {problem}")
    secret_params = secret_query_params(url.query.decode()) + [
        name for name in request.params if is_secret_name(name)
    ]
    if secret_params:
        raise TaskRejected(
            f"http step: query parameter(s) {', '.join(sorted(set(secret_params)))} carry a "
            f"secret in the payload; {USE_CREDENTIALS}"
        )
    _check_headers(request.headers)
    return request, url

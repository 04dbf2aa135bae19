"""Keeping secrets out of what is stored: by key name, by URL part, and by value (pure).

Three rules, applied together by `redact`:
- a value under a secret-looking key (`Authorization`, `api_key`, `cookie`, …) becomes `***`;
- a URL anywhere in a string loses its user-info and the values of secret-looking query
  parameters (`?api_key=`, `token`, `sig`, …);
- every known secret value (configured credentials, the Slack webhook URL, and any value found
  under a secret-looking key of the same structure) is replaced wherever it occurs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"
MIN_SECRET_CHARS = 8
"""Shorter values are not redacted by value (they would mangle ordinary text)."""

SECRET_KEY = re.compile(
    r"(token|secret|passw(or)?d|authori[sz]ation|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|cookie|webhook|signature|x-auth)",
    re.I,
)
SECRET_QUERY_PARAMS = frozenset({"key", "sig", "pass", "pwd", "auth"})
"""Short query parameter names that carry secrets (longer ones match `SECRET_KEY`)."""
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.I)


def is_secret_name(name: str) -> bool:
    """Does a header, key or query parameter name look like it carries a secret?"""
    return bool(SECRET_KEY.search(name)) or name.lower() in SECRET_QUERY_PARAMS


def secret_query_params(query: str) -> list[str]:
    """Names of the secret-looking parameters in a query string."""
    return [name for name, _ in parse_qsl(query, keep_blank_values=True) if is_secret_name(name)]


def scrub_url(url: str) -> str:
    """The URL without user-info and with secret-looking query values replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    secret_params = bool(parts.query) and bool(secret_query_params(parts.query))
    if "@" not in parts.netloc and not secret_params:
        return url
    query = parts.query
    if secret_params:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs], safe="*/:")
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with every known secret value replaced and every URL scrubbed."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _URL.sub(lambda m: scrub_url(m.group(0)), text)


def _values_under_secret_keys(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if is_secret_name(str(k)) and isinstance(v, str):
                yield v
                yield from v.split()
            else:
                yield from _values_under_secret_keys(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _values_under_secret_keys(v)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value that is safe to store (the three rules above)."""
    known = [*secrets, *_values_under_secret_keys(value)]
    return _redact(value, known)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if is_secret_name(str(k)) else _redact(v, secrets) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value

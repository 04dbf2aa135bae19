"""Domain names as an operator pastes them → one canonical ASCII form, or a reason why not.

`normalize_domain` strips whitespace, a pasted URL's scheme, credentials, port and path, a
trailing dot and a leading `www.`, lower-cases, converts internationalised names to punycode
(IDNA 2008 with UTS #46 mapping, via the `idna` package) and checks the DNS host-name rules
(RFC 1035/1123, RFC 5891 for `xn--` labels). It never raises for bad input: the reason goes on
`error`, written for a person reading a drop-list report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

MAX_LABEL_LENGTH = 63
MAX_NAME_LENGTH = 253
_LDH = re.compile(r"[a-z0-9-]+")
_INVALID_CHAR = re.compile(r"[^a-z0-9-]")

MULTI_LABEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "me.uk", "ltd.uk", "plc.uk", "ac.uk", "gov.uk",
        "com.au", "net.au", "org.au", "co.nz", "net.nz", "org.nz",
        "co.jp", "ne.jp", "or.jp", "co.kr", "co.in", "net.in", "org.in", "co.za",
        "com.br", "net.br", "com.mx", "com.ar", "com.co", "com.tr", "com.cn", "com.hk",
        "com.sg", "com.tw", "com.my", "co.id", "co.il", "com.pl", "com.ua",
    }
)  # fmt: skip
"""Common two-label public suffixes. `sld` looks past these; the full Public Suffix List is out
of scope, so an unlisted one (e.g. `example.gv.at`) is read as if `at` were the only suffix."""


@dataclass(frozen=True)
class NormalizedDomain:
    """One input name: `domain` and `tld` when valid, else `error` says why (never both)."""

    raw: str
    domain: str | None
    tld: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def _invalid(raw: str, reason: str) -> NormalizedDomain:
    return NormalizedDomain(raw=raw, domain=None, tld=None, error=reason)


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _host_part(text: str) -> str:
    """The host of a pasted URL (`https://user@Example.com:443/a?b` → `Example.com`)."""
    text = urlsplit(text).netloc if "://" in text else re.split(r"[/?#]", text, maxsplit=1)[0]
    text = text.rpartition("@")[2]
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit() and host:
        text = host
    return text


def _to_ascii(name: str) -> tuple[str | None, str | None]:
    """UTS #46 mapping and punycode for names with non-ASCII characters: (ascii, error)."""
    if name.isascii():
        return name.lower(), None
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        return None, f"not a valid internationalised name: {exc}"
    labels = []
    for label in mapped.split("."):
        if label.isascii():
            labels.append(label)
            continue
        try:
            labels.append(idna.alabel(label).decode("ascii"))
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            return None, f"label {_short(label)!r} is not a valid internationalised label: {exc}"
    return ".".join(labels), None


def _label_error(label: str) -> str | None:
    if not label:
        return "empty label (two dots in a row, or a leading dot)"
    if len(label) > MAX_LABEL_LENGTH:
        return (
            f"label {_short(label)!r} is {len(label)} characters long; "
            f"the limit is {MAX_LABEL_LENGTH}"
        )
    if not _LDH.fullmatch(label):
        bad = _INVALID_CHAR.search(label)
        assert bad is not None
        return f"invalid character {bad.group()!r} in label {_short(label)!r}"
    if label.startswith("-") or label.endswith("-"):
        return f"label {_short(label)!r} starts or ends with a hyphen"
    if label[2:4] == "--":
        if not label.startswith("xn--"):
            return f"label {_short(label)!r} has '--' in positions 3-4 but is not an xn-- label"
        try:
            idna.decode(label)
        except (idna.IDNAError, UnicodeError, ValueError):
            return f"label {_short(label)!r} is not valid punycode (xn--)"
    return None


def normalize_domain(raw: str) -> NormalizedDomain:
    """Canonical lower-case ASCII (punycode) form of `raw`, with its TLD, or an error.

    `" Bücher.Example. "` → `xn--bcher-kva.example`; `"https://www.Example.com/path"` →
    `example.com`. A leading `www.` is dropped when more labels follow it (drop lists and RDAP
    speak of registrable names, not hosts). Rejected, with the reason on `error`: empty input,
    a single label (no TLD), a label over 63 or a name over 253 characters, characters other
    than letters, digits and hyphens, a label starting or ending with a hyphen, `--` in
    positions 3-4 of a label that is not valid `xn--` punycode, and an all-numeric TLD (which
    also rejects IPv4 addresses).
    """
    try:
        text = raw.strip()
        if not text:
            return _invalid(raw, "empty")
        text = _host_part(text).strip()
        if text.endswith(".") and not text.endswith(".."):
            text = text[:-1]
        if not text:
            return _invalid(raw, "empty")
        name, error = _to_ascii(text)
        if error is not None or name is None:
            return _invalid(raw, error or "not a valid name")
        labels = name.split(".")
        if len(labels) > 2 and labels[0] == "www":
            labels = labels[1:]
            name = ".".join(labels)
        for label in labels:
            label_error = _label_error(label)
            if label_error is not None:
                return _invalid(raw, label_error)
        if len(labels) < 2:
            return _invalid(raw, f"{_short(name)!r} is a single label, with no TLD")
        if len(name) > MAX_NAME_LENGTH:
            return _invalid(
                raw, f"name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
            )
        tld = labels[-1]
        if tld.isdigit():
            return _invalid(raw, f"TLD {tld!r} is all digits (an IP address is not a domain)")
        return NormalizedDomain(raw=raw, domain=name, tld=tld, error=None)
    except Exception as exc:  # never raise for bad input; report it instead
        return _invalid(raw, f"could not read {_short(str(raw))!r}: {exc}")


def sld(domain: str) -> str:
    """The registrable label of a normalised name: the part a person reads and `score` scores.

    The label just before the public suffix, taking the suffix to be the last label (the TLD)
    unless the last two form one of the `MULTI_LABEL_SUFFIXES` (`example.co.uk` → `example`).
    A name that is only a suffix (`co.uk`) gives its first label. Subdomains are ignored:
    `shop.example.com` → `example`.
    """
    labels = domain.split(".")
    if len(labels) > 2 and ".".join(labels[-2:]) in MULTI_LABEL_SUFFIXES:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else labels[0]

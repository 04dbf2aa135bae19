"""Claims a model makes about its sources, and whether the sources say so (pure logic).

The model answers in plain-text blocks, one per claim:

    CLAIM: <one sentence>
    SOURCE: <number>
    QUOTE: <verbatim text from that source>

Text outside blocks is ignored; a block that lacks a part, repeats one, or names no source
number is malformed. A quote supports its claim only when it is found in that source's
extracted text after both are normalised the same way: Unicode compatibility forms, typographic
quotes and apostrophes made straight, invisible characters removed, runs of whitespace made one
space. Nothing else is forgiven: case, words, punctuation and order must match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MIN_QUOTE_CHARS = 20
"""A shorter quote ("the market grew") is found almost anywhere and proves nothing."""

_KEY = re.compile(
    r"^\s*(?:[-*>]\s*)?(?:\*\*)?(CLAIM|SOURCE|QUOTE)(?:\*\*)?\s*:(?:\*\*)?\s?(.*)$", re.I
)
_SOURCE_NUMBER = re.compile(r"^\[?\s*(\d{1,4})\s*\]?\.?$")
_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u00b4": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
    }
)
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_SPACE = re.compile(r"\s+")
_WRAPPING = "\"' "


@dataclass(frozen=True)
class Claim:
    """One claim as the model wrote it: the sentence, the source number, the quote."""

    text: str
    source: int
    quote: str


@dataclass(frozen=True)
class MalformedClaim:
    """A block that cannot be checked, with what is wrong with it and its text."""

    reason: str
    raw: str


@dataclass(frozen=True)
class DroppedClaim:
    """A claim left out of the report, and why (the quote is not in the source, …)."""

    text: str
    source: int | None
    quote: str
    reason: str
    round: int


@dataclass(frozen=True)
class ReportSource:
    """A source as the report lists it."""

    number: int
    url: str
    final_url: str
    title: str
    fetched_at: str
    text_sha256: str


@dataclass(frozen=True)
class SkippedSource:
    """A source that was not used, and why (unreachable, 404, disallowed by robots.txt, …)."""

    url: str
    reason: str


def normalise(text: str) -> str:
    """The form quotes are compared in: NFKC, straight quotes, no invisibles, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).translate(_INVISIBLE)
    return _SPACE.sub(" ", text).strip()


def _clean_quote(quote: str) -> str:
    """The quote without the quotation marks a model tends to wrap it in."""
    quote = normalise(quote)
    while len(quote) >= 2 and quote[0] == quote[-1] and quote[0] in "\"'":
        quote = quote[1:-1].strip()
    return quote.strip(" ")


def quote_in_text(quote: str, text: str) -> bool:
    """Is `quote` (normalised, without wrapping quotation marks) found in `text` (normalised)?"""
    cleaned = _clean_quote(quote)
    return bool(cleaned) and cleaned in normalise(text)


def _block(raw_lines: list[str]) -> Claim | MalformedClaim:
    parts: dict[str, list[str]] = {}
    current: str | None = None
    raw = "\n".join(raw_lines).strip()
    for line in raw_lines:
        match = _KEY.match(line)
        if match:
            key = match.group(1).upper()
            if key in parts:
                return MalformedClaim(f"the block has more than one {key}:", raw)
            parts[key] = [match.group(2)]
            current = key
        elif current is not None:
            parts[current].append(line)
    missing = [k for k in ("CLAIM", "SOURCE", "QUOTE") if not " ".join(parts.get(k, [])).strip()]
    if missing:
        return MalformedClaim("the block has no " + " and no ".join(f"{k}:" for k in missing), raw)
    text = normalise(" ".join(parts["CLAIM"]))
    source_text = normalise(" ".join(parts["SOURCE"]))
    number = _SOURCE_NUMBER.match(source_text)
    if number is None:
        return MalformedClaim(f"SOURCE: {source_text!r} is not one source number", raw)
    quote = "\n".join(parts["QUOTE"]).strip()
    return Claim(text=text, source=int(number.group(1)), quote=quote)


def parse_claims(answer: str) -> tuple[list[Claim], list[MalformedClaim]]:
    """The claims of an answer, and its malformed blocks; text outside blocks is ignored.

    A block starts at a `CLAIM:` line (or a lone `SOURCE:`/`QUOTE:` line outside a block) and
    ends at a blank line, at the next `CLAIM:`, or at the end; a part may run over several
    lines.
    """
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in answer.splitlines():
        match = _KEY.match(line)
        if match and (current is None or match.group(1).upper() == "CLAIM"):
            current = [line]
            blocks.append(current)
        elif not line.strip():
            current = None
        elif current is not None:
            current.append(line)
    claims: list[Claim] = []
    malformed: list[MalformedClaim] = []
    for lines in blocks:
        parsed = _block(lines)
        if isinstance(parsed, Claim):
            claims.append(parsed)
        else:
            malformed.append(parsed)
    return claims, malformed


def claim_problem(claim: Claim, texts: dict[int, str]) -> str | None:
    """Why the claim is not supported by its source (None when its quote is found there).

    `texts` maps each source number shown to the model to its extracted text.
    """
    if claim.source not in texts:
        shown = ", ".join(f"[{n}]" for n in sorted(texts)) or "none"
        return f"SOURCE {claim.source} is not one of the sources given ({shown})"
    quote = _clean_quote(claim.quote)
    if len(quote) < MIN_QUOTE_CHARS:
        return (
            f"the quote is {len(quote)} characters long, too short to support a claim "
            f"(at least {MIN_QUOTE_CHARS})"
        )
    if quote in normalise(texts[claim.source]):
        return None
    elsewhere = [n for n, t in sorted(texts.items()) if n != claim.source and quote in normalise(t)]
    if elsewhere:
        return f"the quote is not in source [{claim.source}]; it is in " + ", ".join(
            f"[{n}]" for n in elsewhere
        )
    return f"the quote is not found verbatim in source [{claim.source}]"


def _blockquote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def _cell(text: str) -> str:
    return normalise(text).replace("|", "\\|")


def render_report(
    question: str,
    claims: list[Claim],
    sources: list[ReportSource],
    dropped: list[DroppedClaim],
    skipped: list[SkippedSource],
    model: str,
) -> str:
    """The research report in markdown: question, verified claims with numbered citations and
    their quotes, the sources with links, the dropped claims and the sources not used."""
    lines = ["# Research report", "", "## Question", "", _blockquote(question.strip()), ""]
    lines += [
        "## Findings",
        "",
        f"Each finding below cites a source and quotes it; every quote was found verbatim in "
        f"the text fetched from that source (answer by `{model}`).",
        "",
    ]
    for number, claim in enumerate(claims, start=1):
        lines += [f"{number}. {claim.text} [{claim.source}]", ""]
        lines += ["   " + line for line in _blockquote(_clean_quote(claim.quote)).splitlines()]
        lines.append("")
    lines += ["## Sources", ""]
    for source in sources:
        title = _cell(source.title) or source.final_url
        moved = f" (redirected from {source.url})" if source.final_url != source.url else ""
        lines.append(
            f"[{source.number}] [{title}]({source.final_url}){moved}, fetched "
            f"{source.fetched_at}, text sha256 `{source.text_sha256}`"
        )
    lines.append("")
    if dropped:
        lines += ["## Dropped claims", "", "These claims were made but not verified:", ""]
        for d in dropped:
            cited = f" [{d.source}]" if d.source is not None else ""
            lines.append(f"- {_cell(d.text) or '(malformed block)'}{cited} — {d.reason}")
        lines.append("")
    if skipped:
        lines += ["## Sources not used", ""]
        lines += [f"- {s.url} — {s.reason}" for s in skipped]
        lines.append("")
    return "\n".join(lines)

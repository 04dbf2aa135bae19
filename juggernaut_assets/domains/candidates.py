"""Candidate names for `expired_domains`: operator drop lists, and trend terms × TLDs.

A drop list is an `http(s)://` URL (fetched through `HttpSources`) or a local file: one name a
line, or CSV with a `domain` column. A list that cannot be read is reported in the asset's
metadata and contributes no rows; a bad line inside a list becomes a row with an `error`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from juggernaut_assets.lib.domains.drop_lists import DROP_LIST_SCHEMA, read_drop_list_bytes
from juggernaut_assets.lib.domains.normalize import normalize_domain
from juggernaut_assets.lib.sources import SourceRequest
from juggernaut_assets.resources.http_sources import HttpSources

DROP_LIST_SOURCE = "drop_list"
TREND_SOURCE = "trends"
_NOT_LABEL = re.compile(r"[^0-9a-z]+")


def term_label(term: str) -> str:
    """A trend term as a domain label: lower case, letters and digits only (`ai agents` →
    `aiagents`)."""
    return _NOT_LABEL.sub("", term.lower())


def drop_list_candidates(
    http: HttpSources, locations: Sequence[str]
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Rows (`DROP_LIST_SCHEMA`) from every readable list, and an error for each unreadable one."""
    frames: list[pl.DataFrame] = [pl.DataFrame(schema=DROP_LIST_SCHEMA)]
    errors: dict[str, str] = {}
    urls = [loc for loc in locations if loc.startswith(("http://", "https://"))]
    fetched = {
        f.request.url: f for f in http.fetch_all([SourceRequest(DROP_LIST_SOURCE, u) for u in urls])
    }
    for location in locations:
        if location in fetched:
            response = fetched[location]
            if not response.ok:
                errors[location] = response.error or f"HTTP {response.status}"
                continue
            data = response.body
        else:
            try:
                data = Path(location).expanduser().read_bytes()
            except OSError as exc:
                errors[location] = f"cannot read: {exc.strerror or exc}"
                continue
        frames.append(read_drop_list_bytes(data, location))
    return pl.concat(frames), errors


def trend_candidates(terms: Sequence[str], tlds: Sequence[str]) -> pl.DataFrame:
    """`term_label(term).tld` for every top term and TLD, normalised like any other name."""
    rows = []
    for term in terms:
        label = term_label(term)
        for tld in tlds:
            raw = f"{label}.{tld.strip('.').lower()}"
            name = normalize_domain(raw)
            rows.append(
                {
                    "raw": raw,
                    "domain": name.domain,
                    "tld": name.tld,
                    "source": f"{TREND_SOURCE}:{term}",
                    "line": None,
                    "error": name.error,
                }
            )
    return pl.DataFrame(rows, schema=DROP_LIST_SCHEMA)


def matched_terms(domains: pl.Series, terms: Sequence[str]) -> pl.Series:
    """For each domain, the trend terms whose label occurs in the name before its TLD."""
    labels = domains.str.replace(r"\.[^.]+$", "")
    matches = [
        pl.when(pl.col("label").str.contains(term_label(term), literal=True))
        .then(pl.lit(term))
        .otherwise(None)
        for term in terms
        if term_label(term)
    ]
    if not matches:
        return pl.Series("matched_terms", [[] for _ in range(len(domains))], pl.List(pl.String))
    frame = pl.DataFrame({"label": labels})
    return frame.select(matched_terms=pl.concat_list(matches).list.drop_nulls()).to_series()

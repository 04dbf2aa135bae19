"""A 0-100 score for expired-domain candidates, as polars expressions over the whole frame.

The score is the sum of eight components, each kept as its own column so a person can see why a
name ranks where it does, clipped to 0..100. With the default `ScoreWeights` the positive parts
add up to exactly 100. Anchors (shared/sources.md):

- `score_length`: easyexpireddomains prefers labels of 5-14 characters → 15 points inside that
  range, 3 fewer per character outside it, never below 0.
- `score_digits`: −8 per digit; `score_hyphens`: −4 per hyphen (easyexpireddomains). In a
  punycode label only the ASCII characters the name really has count (`xn--a-1b-xyz` → `a-1b`),
  not the `xn--` prefix or the encoded part; length is the punycode length.
- `score_words`: up to 20 points for the share of the label covered by dictionary words
  (bundled `words.txt`), found greedily left to right, longest word first at each position
  (`bestbuy` → best+buy, all 7 characters; `qxzbest` → 4 of 7). Punycode (`xn--`) labels get 0.
- `score_tld`: domainhunter keeps .com/.net/.org → .com 10, .net/.org 6, others 0.
- `score_trend`: 5 points per matched market-trend term, at most 15.
- `score_archive`: Wayback history, as Domain Hunter Gatherer and domainhunter weigh it: 2/4/7/10
  points from 1/10/50/200 snapshots, plus 0.5 per year since the first archived year (≤ 20 years).
- `score_timing`: available now (`registered` is false) 20; a known drop date 20 falling linearly
  to 0 at 60 days away; a drop status (`pending delete`, `redemption period`) without a date 10;
  registered with no drop status −15; unknown 0.

The label scored is `normalize.sld(domain)`: the label before the public suffix. A row without a
domain gets null components and a null score. `score_domain_rowwise` computes the same numbers
one row at a time in plain Python; a test holds the two to identical results.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import polars as pl

from juggernaut_assets.lib.domains.lifecycle import DROP_STATUSES, normalize_status
from juggernaut_assets.lib.domains.normalize import MULTI_LABEL_SUFFIXES, sld

COMPONENTS = (
    "score_length",
    "score_digits",
    "score_hyphens",
    "score_words",
    "score_tld",
    "score_trend",
    "score_archive",
    "score_timing",
)
INPUT_SCHEMA = pl.Schema(
    {
        "domain": pl.String,
        "tld": pl.String,
        "registered": pl.Boolean,
        "rdap_status": pl.List(pl.String),
        "estimated_drop_date": pl.Date,
        "wayback_snapshots": pl.Int64,
        "first_archived_year": pl.Int64,
        "matched_terms": pl.List(pl.String),
    }
)
MAX_SCORE = 100.0
_LABEL = "_label"
_MULTI_SUFFIX_PATTERN = (
    r"\.(?:" + "|".join(re.escape(s) for s in sorted(MULTI_LABEL_SUFFIXES)) + r")$"
)


@dataclass(frozen=True)
class ScoreWeights:
    """Points for each component; the defaults are described in the module docstring."""

    length_points: float = 15.0
    """Points for a label of `length_min`..`length_max` characters."""
    length_min: int = 5
    length_max: int = 14
    length_step: float = 3.0
    """Points lost per character below `length_min` or above `length_max`."""
    digit_penalty: float = 8.0
    hyphen_penalty: float = 4.0
    words_points: float = 20.0
    """Points for a label made entirely of dictionary words; scaled by the share covered."""
    tld_points: tuple[tuple[str, float], ...] = (("com", 10.0), ("net", 6.0), ("org", 6.0))
    other_tld_points: float = 0.0
    trend_points_per_term: float = 5.0
    trend_max_points: float = 15.0
    archive_snapshot_tiers: tuple[tuple[int, float], ...] = (
        (1, 2.0),
        (10, 4.0),
        (50, 7.0),
        (200, 10.0),
    )
    """(at least this many Wayback snapshots, points), in increasing order."""
    archive_points_per_year: float = 0.5
    archive_max_years: int = 20
    timing_available_points: float = 20.0
    """Not registered: it can be registered today."""
    timing_dropping_points: float = 20.0
    """A drop date today or earlier; falls linearly to 0 at `timing_horizon_days` away."""
    timing_horizon_days: int = 60
    timing_drop_status_points: float = 10.0
    """A drop status (pending delete, redemption period) but no estimated date."""
    timing_registered_points: float = -15.0
    """Registered with no drop status and no drop date."""

    def __post_init__(self) -> None:
        if self.timing_horizon_days < 1:
            raise ValueError("timing_horizon_days must be at least 1")
        if self.length_min > self.length_max:
            raise ValueError("length_min must not exceed length_max")
        tiers = [at_least for at_least, _ in self.archive_snapshot_tiers]
        if tiers != sorted(tiers):
            raise ValueError("archive_snapshot_tiers must be in increasing order")


@cache
def dictionary_words() -> tuple[str, ...]:
    """The bundled word list, longest first (ties alphabetical): the matching priority."""
    text = resources.files(__package__).joinpath("words.txt").read_text(encoding="utf-8")
    words = {w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#")}
    return tuple(sorted(words, key=lambda w: (-len(w), w)))


@cache
def _word_set() -> frozenset[str]:
    return frozenset(dictionary_words())


@cache
def _word_removal() -> Mapping[str, str]:
    return dict.fromkeys(dictionary_words(), "")


def covered_by_words(label: str) -> int:
    """Characters of `label` inside dictionary words, matched greedily left to right, longest
    word first at each position (the polars path does the same with Aho–Corasick)."""
    words = _word_set()
    longest = len(dictionary_words()[0])
    covered, i = 0, 0
    while i < len(label):
        for size in range(min(longest, len(label) - i), 0, -1):
            if label[i : i + size] in words:
                covered += size
                i += size
                break
        else:
            i += 1
    return covered


def _label_expr() -> pl.Expr:
    """`normalize.sld` as an expression."""
    labels = pl.col("domain").str.split(".")
    return (
        pl.when(pl.col("domain").str.contains(_MULTI_SUFFIX_PATTERN))
        .then(labels.list.get(-3, null_on_oob=True))
        .otherwise(labels.list.get(-2, null_on_oob=True))
        .fill_null(labels.list.first())
    )


def _drop_status_spellings(lazy: pl.LazyFrame) -> list[str]:
    """The distinct `rdap_status` values in the frame that normalise to a drop status.

    Status values are few (tens of spellings in millions of rows), so `normalize_status` runs
    once per distinct value and the rows are matched on the raw strings.
    """
    distinct = (
        lazy.select(pl.col("rdap_status").explode(empty_as_null=True).unique())
        .collect()
        .to_series()
    )
    return sorted(v for v in distinct.drop_nulls() if normalize_status(v) in DROP_STATUSES)


def _drop_points(w: ScoreWeights) -> list[float]:
    """Timing points for a drop 0, 1, … `timing_horizon_days` days away (linear to 0).

    A table shared by both paths, so they agree to the last bit."""
    horizon = w.timing_horizon_days
    return [w.timing_dropping_points * (horizon - d) / horizon for d in range(horizon + 1)]


def _penalty(count: pl.Expr, per_item: float) -> pl.Expr:
    return pl.when(count > 0).then(-per_item * count).otherwise(0.0)


def _with_input_columns(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    missing = [pl.lit(None, dtype).alias(n) for n, dtype in INPUT_SCHEMA.items() if n not in schema]
    lazy = lazy.with_columns(missing) if missing else lazy
    status_type = schema.get("rdap_status", pl.List(pl.String))
    if status_type == pl.String:
        lazy = lazy.with_columns(pl.col("rdap_status").str.split(","))
    elif status_type == pl.Null or status_type == pl.List(pl.Null):
        lazy = lazy.with_columns(pl.col("rdap_status").cast(pl.List(pl.String)))
    return lazy


def score_domains(
    frame: pl.DataFrame | pl.LazyFrame, *, today: date, weights: ScoreWeights = ScoreWeights()
) -> pl.DataFrame:
    """`frame` with the eight `score_*` component columns and `score` (0..100) added.

    Reads `domain`, `tld`, `registered`, `rdap_status` (list of strings, or one comma-separated
    string; any spelling `lifecycle.normalize_status` accepts), `estimated_drop_date`,
    `wayback_snapshots`, `first_archived_year` and `matched_terms`; a missing column counts as
    all null. Components are Float64.
    """
    w = weights
    lazy = _with_input_columns(frame)
    if isinstance(frame, pl.LazyFrame):
        lazy = lazy.collect().lazy()
    drop_spellings = _drop_status_spellings(lazy)
    lazy = lazy.with_columns(_label_expr().alias(_LABEL))
    label = pl.col(_LABEL)
    length = label.str.len_chars().cast(pl.Int64)
    ascii_part = (
        pl.when(label.str.starts_with("xn--"))
        .then(label.str.extract(r"^xn--(.*)-[^-]*$", 1).fill_null(""))
        .otherwise(label)
    )
    outside = (w.length_min - length).clip(lower_bound=0) + (length - w.length_max).clip(
        lower_bound=0
    )
    covered = (
        pl.when(label.str.starts_with("xn--"))
        .then(0)
        .otherwise(length - label.str.replace_many(_word_removal(), leftmost=True).str.len_chars())
    )
    snapshots = pl.col("wayback_snapshots")
    archive_tier: pl.Expr = pl.lit(0.0)
    for at_least, points in w.archive_snapshot_tiers:
        archive_tier = pl.when(snapshots >= at_least).then(pl.lit(points)).otherwise(archive_tier)
    years = (today.year - pl.col("first_archived_year")).clip(0, w.archive_max_years)
    days = (pl.col("estimated_drop_date") - pl.lit(today)).dt.total_days()
    days = days.clip(0, w.timing_horizon_days)
    has_drop_status = (
        pl.col("rdap_status")
        .list.eval(pl.element().is_in(drop_spellings))
        .list.any()
        .fill_null(False)
    )
    timing = (
        pl.when(pl.col("registered").eq(False))
        .then(pl.lit(w.timing_available_points))
        .when(pl.col("estimated_drop_date").is_not_null())
        .then(days.replace_strict(dict(enumerate(_drop_points(w))), return_dtype=pl.Float64))
        .when(has_drop_status)
        .then(pl.lit(w.timing_drop_status_points))
        .when(pl.col("registered").eq(True))
        .then(pl.lit(w.timing_registered_points))
        .otherwise(pl.lit(0.0))
    )
    components = {
        "score_length": (w.length_points - w.length_step * outside).clip(lower_bound=0.0),
        "score_digits": _penalty(ascii_part.str.count_matches(r"[0-9]"), w.digit_penalty),
        "score_hyphens": _penalty(
            ascii_part.str.count_matches("-", literal=True), w.hyphen_penalty
        ),
        "score_words": w.words_points * covered / length,
        "score_tld": pl.col("tld")
        .replace_strict(dict(w.tld_points), default=w.other_tld_points, return_dtype=pl.Float64)
        .fill_null(w.other_tld_points),
        "score_trend": (
            w.trend_points_per_term * pl.col("matched_terms").list.len().fill_null(0)
        ).clip(upper_bound=w.trend_max_points),
        "score_archive": archive_tier + w.archive_points_per_year * years.fill_null(0),
        "score_timing": timing,
    }
    valid = label.is_not_null()
    lazy = lazy.with_columns(
        pl.when(valid).then(expr.cast(pl.Float64)).alias(name) for name, expr in components.items()
    ).drop(_LABEL)
    total = pl.col(COMPONENTS[0])
    for name in COMPONENTS[1:]:
        total = total + pl.col(name)
    return lazy.with_columns(score=total.clip(0.0, MAX_SCORE)).collect()


def score_domain_rowwise(
    row: Mapping[str, Any], *, today: date, weights: ScoreWeights = ScoreWeights()
) -> dict[str, Any]:
    """`score_domains` for one row, in plain Python: `row` plus the component columns and
    `score`. Used to check the polars path and as the benchmark's baseline."""
    w = weights
    out = dict(row)
    domain = row.get("domain")
    if domain is None:
        out.update(dict.fromkeys((*COMPONENTS, "score")))
        return out
    label = sld(domain)
    length = len(label)
    outside = max(0, w.length_min - length) + max(0, length - w.length_max)
    covered = 0 if label.startswith("xn--") else covered_by_words(label)
    ascii_part = label[4:].rpartition("-")[0] if label.startswith("xn--") else label
    digits = sum(c in "0123456789" for c in ascii_part)
    hyphens = ascii_part.count("-")

    snapshots = row.get("wayback_snapshots")
    archive_tier = 0.0
    for at_least, points in w.archive_snapshot_tiers:
        if snapshots is not None and snapshots >= at_least:
            archive_tier = points
    first_year = row.get("first_archived_year")
    years = 0 if first_year is None else min(max(today.year - first_year, 0), w.archive_max_years)

    statuses = row.get("rdap_status") or []
    if isinstance(statuses, str):
        statuses = statuses.split(",")
    has_drop_status = any(normalize_status(s) in DROP_STATUSES for s in statuses if s is not None)
    registered = row.get("registered")
    drop_date = row.get("estimated_drop_date")
    if registered is False:
        timing = w.timing_available_points
    elif drop_date is not None:
        days = min(max((drop_date - today).days, 0), w.timing_horizon_days)
        timing = _drop_points(w)[days]
    elif has_drop_status:
        timing = w.timing_drop_status_points
    elif registered is True:
        timing = w.timing_registered_points
    else:
        timing = 0.0

    terms = row.get("matched_terms")
    tld = row.get("tld")
    components = {
        "score_length": max(w.length_points - w.length_step * outside, 0.0),
        "score_digits": -w.digit_penalty * digits if digits else 0.0,
        "score_hyphens": -w.hyphen_penalty * hyphens if hyphens else 0.0,
        "score_words": w.words_points * covered / length,
        "score_tld": dict(w.tld_points).get(tld, w.other_tld_points)
        if tld is not None
        else w.other_tld_points,
        "score_trend": min(w.trend_points_per_term * len(terms or []), w.trend_max_points),
        "score_archive": archive_tier + w.archive_points_per_year * years,
        "score_timing": timing,
    }
    out.update({name: float(value) for name, value in components.items()})
    total = 0.0
    for name in COMPONENTS:
        total = total + out[name]
    out["score"] = min(max(total, 0.0), MAX_SCORE)
    return out

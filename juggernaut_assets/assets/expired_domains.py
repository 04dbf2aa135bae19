"""`expired_domains`: scored expiring and expired domain candidates, and the work they lead to."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pydantic

from juggernaut_assets import settings
from juggernaut_assets.assets.governance import OWNERS
from juggernaut_assets.assets.market_trends import DAILY_FRESHNESS
from juggernaut_assets.db.enums import Priority
from juggernaut_assets.domains.candidates import (
    drop_list_candidates,
    matched_terms,
    trend_candidates,
)
from juggernaut_assets.domains.lookups import look_up
from juggernaut_assets.execution.scan import scan_provenance
from juggernaut_assets.lib.domains.lifecycle import estimate_drop_date
from juggernaut_assets.lib.domains.score import COMPONENTS, score_domains
from juggernaut_assets.lib.trends import top_terms
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.resources.http_sources import HttpSources
from juggernaut_assets.resources.polars_io import Column, documented_columns, markdown_table
from juggernaut_assets.tasks.create import add_task
from juggernaut_assets.tasks.payloads import DomainAcquisitionPayload

TASK_TYPE = "domain_acquisition"
CHECK_SCHEMA = "schema_and_types"
CHECK_SCORE_RANGE = "score_in_range"
CHECK_UNIQUE = "no_duplicate_domains"
SCORE_PARTS = {
    "score_length": "Label length: 15 points for 5-14 characters, 3 fewer per character outside.",
    "score_digits": "−8 per digit in the label.",
    "score_hyphens": "−4 per hyphen in the label.",
    "score_words": "Up to 20 points for the share of the label made of dictionary words.",
    "score_tld": ".com 10, .net and .org 6, others 0.",
    "score_trend": "5 points per matched trend term, at most 15.",
    "score_archive": "Wayback history: 2-10 points by snapshots, plus 0.5 per archived year.",
    "score_timing": "Free now 20; a drop date 20 falling to 0 at 60 days; a drop status "
    "without a date 10; registered without one −15.",
}
"""What each score component adds (every one of `COMPONENTS`; the rules: lib/domains/score.py)."""
OUTPUT_COLUMNS: dict[str, Column] = {
    "domain": (pl.String(), "The name, normalised (IDN as punycode)."),
    "tld": (pl.String(), "Its top-level domain."),
    "source": (pl.String(), "The drop list it came from, or trends:<term> for a trend name."),
    "registered": (pl.Boolean(), "Registered per RDAP (false: free to register now)."),
    "rdap_status": (pl.List(pl.String()), "Its RDAP statuses (e.g. pending delete)."),
    "expiration_date": (pl.Date(), "Its registration's expiration date, per RDAP."),
    "estimated_drop_date": (pl.Date(), "The day it is expected to be deleted, if it drops."),
    "wayback_snapshots": (pl.Int64(), "Snapshots in the Wayback Machine."),
    "first_archived_year": (pl.Int64(), "The year of its first Wayback snapshot."),
    "matched_terms": (pl.List(pl.String()), "Trend terms the name contains."),
    "score": (pl.Float64(), "0..100, the sum of the score_* parts (lib/domains/score.py)."),
    **{name: (pl.Float64(), SCORE_PARTS[name]) for name in COMPONENTS},
    "rdap_url": (pl.String(), "The RDAP record the lookup read."),
    "checked_at": (pl.Datetime("us", "UTC"), "When it was looked up (or the cached lookup)."),
    "error": (pl.String(), "Why the name could not be checked (invalid, no RDAP server, …)."),
}
OUTPUT_SCHEMA = pl.Schema({name: dtype for name, (dtype, _) in OUTPUT_COLUMNS.items()})


class ExpiredDomainsConfig(dg.Config):
    """Where candidates come from, how they are checked and when they become tasks."""

    drop_lists: list[str] = pydantic.Field(
        default_factory=lambda: settings.env_list("JUGGERNAUT_DROP_LISTS"),
        description="URLs or files (one name a line, or CSV with a `domain` column); "
        "default from the comma-separated JUGGERNAUT_DROP_LISTS.",
    )
    tlds: list[str] = pydantic.Field(default_factory=lambda: ["com", "net", "io", "ai"])
    top_terms: int = pydantic.Field(default=8, ge=0, description="Trend terms to build names from.")
    cache_ttl_hours: float = pydantic.Field(default=24.0, ge=0)
    max_lookups: int = pydantic.Field(
        default=500, ge=0, description="At most this many uncached names looked up per run."
    )
    task_threshold: float = pydantic.Field(default=60.0, ge=0, le=100)
    max_price_usd: float = pydantic.Field(default=20.0, gt=0)


def candidates_frame(
    http: HttpSources, config: ExpiredDomainsConfig, terms: list[str]
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Every candidate once (first source wins), invalid names kept with their error."""
    listed, list_errors = drop_list_candidates(http, config.drop_lists)
    frame = pl.concat([listed, trend_candidates(terms, config.tlds)])
    frame = frame.with_columns(domain=pl.coalesce("domain", "raw")).unique(
        "domain", keep="first", maintain_order=True
    )
    return frame, list_errors


LOOKED_UP_SCHEMA = pl.Schema(
    {k: v for k, v in OUTPUT_SCHEMA.items() if k not in ("score", *COMPONENTS, "matched_terms")}
)


def _with_check(candidate: dict, check: dict, today: date) -> dict:
    """One output row before scoring: the candidate and what its lookup found."""
    statuses = check.get("rdap_status") or []
    checked_at = check.get("checked_at")
    drop_date = None
    if check.get("registered"):
        drop_date = estimate_drop_date(
            statuses, check.get("expiration_date"), check.get("last_changed"), today
        )
    return {
        "domain": candidate["domain"],
        "tld": candidate["tld"],
        "source": candidate["source"],
        "registered": check.get("registered"),
        "rdap_status": statuses,
        "expiration_date": check.get("expiration_date"),
        "estimated_drop_date": drop_date,
        "wayback_snapshots": check.get("wayback_snapshots"),
        "first_archived_year": check.get("first_archived_year"),
        "rdap_url": check.get("rdap_url"),
        "checked_at": checked_at.replace(tzinfo=UTC) if checked_at else None,
        "error": candidate["error"] or check.get("error"),
    }


def checked_frame(
    candidates: pl.DataFrame, checks: dict[str, dict], terms: list[str], today: date
) -> pl.DataFrame:
    """Candidates joined with their lookups, drop dates estimated and scores computed;
    best score first."""
    frame = pl.DataFrame(
        [
            _with_check(c, {} if c["error"] else checks.get(c["domain"], {}), today)
            for c in candidates.iter_rows(named=True)
        ],
        schema=LOOKED_UP_SCHEMA,
    ).with_columns(matched_terms=matched_terms(candidates["domain"], terms))
    # An invalid name (no tld) is scored as "no domain" (null score) but keeps its raw text.
    valid_only = frame.with_columns(domain=pl.when(pl.col("tld").is_not_null()).then("domain"))
    return (
        score_domains(valid_only, today=today)
        .with_columns(domain=frame["domain"])
        .select(OUTPUT_SCHEMA.names())
        .cast(OUTPUT_SCHEMA)
        .sort(["score", "domain"], descending=[True, False], nulls_last=True)
    )


def acquisition_candidates(frame: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Names worth buying: scored at least `threshold`, checked without error, and either not
    registered or with an estimated drop date."""
    return frame.filter(
        (pl.col("score") >= threshold)
        & pl.col("error").is_null()
        & ((pl.col("registered") == False) | pl.col("estimated_drop_date").is_not_null())  # noqa: E712
    )


def _evidence(row: dict) -> dict:
    keep = (
        "score",
        *COMPONENTS,
        "registered",
        "rdap_status",
        "wayback_snapshots",
        "first_archived_year",
        "matched_terms",
        "source",
        "rdap_url",
    )
    evidence = {k: row[k] for k in keep}
    for key in ("expiration_date", "estimated_drop_date", "checked_at"):
        evidence[key] = row[key].isoformat() if row[key] else None
    return evidence


def create_acquisition_tasks(
    db: GovernanceDB, worth: pl.DataFrame, max_price_usd: float
) -> tuple[int, int]:
    """One `domain_acquisition` task per name (deduplicated), waiting for approval; returns
    (created, already there). Nothing is bought here."""
    created = existing = 0
    with db.session() as session:
        for row in worth.iter_rows(named=True):
            payload = DomainAcquisitionPayload(
                domain=row["domain"], max_price_usd=max_price_usd, evidence=_evidence(row)
            )
            _, new = add_task(
                session,
                TASK_TYPE,
                payload.model_dump(),
                title=f"Acquire {row['domain']} (score {row['score']:.0f})",
                priority=Priority.MEDIUM,
                dedupe_key=f"{TASK_TYPE}:{row['domain']}",
                requires_approval=True,
                approval_reason=(
                    f"spends money: registering {row['domain']} costs up to "
                    f"${max_price_usd:.2f}; approve to buy"
                ),
            )
            created += new
            existing += not new
    return created, existing


@dg.asset(
    group_name="trends",
    kinds={"polars"},
    owners=OWNERS,
    freshness_policy=DAILY_FRESHNESS,
    metadata=documented_columns(OUTPUT_COLUMNS),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_SCHEMA,
            asset="expired_domains",
            description="Every documented column is present with its documented type.",
        ),
        dg.AssetCheckSpec(
            CHECK_SCORE_RANGE,
            asset="expired_domains",
            description="Every score lies between 0 and 100.",
        ),
        dg.AssetCheckSpec(
            CHECK_UNIQUE,
            asset="expired_domains",
            description="Each domain appears once.",
        ),
    ],
)
def expired_domains(
    context: dg.AssetExecutionContext,
    config: ExpiredDomainsConfig,
    trend_scores: pl.DataFrame,
    http_sources: HttpSources,
    governance_db: GovernanceDB,
):
    """Scored expiring and expired domain candidates, one row per name.

    Candidates come from the operator's drop lists (config `drop_lists`) and from the top
    `trend_scores` terms × `tlds`. Each name is normalised (IDN → punycode; invalid names keep
    a row with the reason in `error`), looked up in RDAP (IANA bootstrap; registered or not,
    status, expiration, an estimated drop date) and the Wayback CDX API (snapshots, first
    archived year), with lookups cached in `domain_checks` for `cache_ttl_hours`. The score
    (0..100) is the sum of its `score_*` parts (each column is described in the Columns table;
    the rules in full are in `lib/domains/score.py`).

    Names scoring at least `task_threshold` that are free or dropping become
    `domain_acquisition` tasks (deduplicated, waiting for approval because they spend money).
    """
    now = datetime.now(UTC)
    terms = top_terms(trend_scores, config.top_terms) if config.top_terms else []
    candidates, list_errors = candidates_frame(http_sources, config, terms)
    valid = candidates.filter(pl.col("error").is_null())["domain"].to_list()
    checks, stats = look_up(
        http_sources,
        governance_db.engine,
        valid,
        now,
        timedelta(hours=config.cache_ttl_hours),
        config.max_lookups,
    )
    frame = checked_frame(candidates, checks, terms, now.date())
    worth = acquisition_candidates(frame, config.task_threshold)
    created, existing = create_acquisition_tasks(governance_db, worth, config.max_price_usd)
    top = frame.filter(pl.col("error").is_null()).head(10)
    yield dg.Output(
        frame,
        metadata={
            **scan_provenance(context.run.tags),
            "source_mode": http_sources.mode.value,
            "candidates": frame.height,
            "invalid_names": candidates.filter(pl.col("error").is_not_null()).height,
            "lookup_errors": stats.errors,
            "lookups_cached": stats.cached,
            "lookups_made": stats.looked_up,
            "lookups_deferred": stats.deferred,
            "rdap_http_statuses": dg.MetadataValue.json(stats.statuses),
            "drop_list_errors": dg.MetadataValue.json(list_errors),
            "trend_terms": ", ".join(terms) or "none",
            "tasks_created": created,
            "tasks_already_open": existing,
            "top_domains": dg.MetadataValue.md(
                markdown_table(
                    top.select(
                        "domain",
                        "score",
                        "registered",
                        "estimated_drop_date",
                        "wayback_snapshots",
                        "matched_terms",
                    )
                )
            ),
        },
    )
    yield from domain_checks(frame, now)


def domain_checks(frame: pl.DataFrame, now: datetime) -> list[dg.AssetCheckResult]:
    """Schema and types as documented; score within 0..100; each domain once."""
    wrong = {
        name: str(frame.schema.get(name))
        for name, dtype in OUTPUT_SCHEMA.items()
        if frame.schema.get(name) != dtype
    }
    scores = frame["score"].drop_nulls()
    out_of_range = int(((scores < 0) | (scores > 100)).sum())
    duplicates = frame.height - frame["domain"].n_unique()
    return [
        dg.AssetCheckResult(
            check_name=CHECK_SCHEMA,
            passed=not wrong,
            metadata={"wrong_columns": dg.MetadataValue.json(wrong)},
        ),
        dg.AssetCheckResult(
            check_name=CHECK_SCORE_RANGE,
            passed=out_of_range == 0,
            metadata={"out_of_range": out_of_range, "scored": scores.len()},
        ),
        dg.AssetCheckResult(
            check_name=CHECK_UNIQUE, passed=duplicates == 0, metadata={"duplicates": duplicates}
        ),
    ]

"""RDAP and Wayback lookups for candidate domains, cached in `domain_checks` for a TTL.

RDAP goes through the IANA bootstrap (RFC 9224): the TLD's server, then `domain/{name}`;
a 404 means not registered. The Wayback CDX API gives snapshot count and first archived year.
Every request goes through `HttpSources` (bounded concurrency, per-host pacing, retries on
429/5xx honouring `Retry-After`). A lookup that fails keeps its error on the domain's row and
is not cached, so the next materialisation asks again; a successful one is reused until it
is older than the TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juggernaut_assets.db.models import DomainCheck
from juggernaut_assets.lib.sources import SourceFormatError, SourceRequest, rdap, wayback
from juggernaut_assets.lib.sources.base import Source
from juggernaut_assets.resources.http_sources import Fetched, HttpSources

CHECKS = DomainCheck.__table__
CHECK_COLUMNS = [c.name for c in CHECKS.columns]


@dataclass
class LookupStats:
    cached: int = 0
    looked_up: int = 0
    errors: int = 0
    deferred: int = 0
    bootstrap_error: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)


def cached_checks(engine: Engine, domains: Sequence[str], now: datetime, ttl: timedelta) -> dict:
    """Fresh, error-free checks of `domains`, by domain."""
    found: dict[str, dict] = {}
    with engine.connect() as conn:
        for start in range(0, len(domains), 500):
            rows = conn.execute(
                sa.select(CHECKS).where(
                    CHECKS.c.domain.in_(domains[start : start + 500]),
                    CHECKS.c.checked_at >= (now - ttl).replace(tzinfo=None),
                    CHECKS.c.error.is_(None),
                )
            ).mappings()
            found.update({row["domain"]: dict(row) for row in rows})
    return found


def store_checks(engine: Engine, checks: Sequence[dict]) -> None:
    """Replace the stored check of each domain (one transaction)."""
    if not checks:
        return
    with engine.begin() as conn:
        conn.execute(CHECKS.delete().where(CHECKS.c.domain.in_([c["domain"] for c in checks])))
        conn.execute(CHECKS.insert(), [{k: c.get(k) for k in CHECK_COLUMNS} for c in checks])


def _bootstrap(http: HttpSources, stats: LookupStats) -> dict[str, str]:
    url = http.base_url("rdap_bootstrap", rdap.BOOTSTRAP_URL)
    [fetched] = http.fetch_all([SourceRequest(Source.RDAP, url, headers=rdap.HEADERS)])
    try:
        if fetched.status is None:
            raise SourceFormatError(f"rdap bootstrap: {fetched.error}")
        return rdap.parse_rdap_bootstrap(fetched.body)
    except SourceFormatError as exc:
        stats.bootstrap_error = str(exc)
        return {}


def _rdap_part(domain: str, url: str | None, fetched: Fetched | None, stats: LookupStats) -> dict:
    if url is None:
        return {"error": f"rdap: no RDAP server for .{domain.rsplit('.', 1)[-1]}"}
    assert fetched is not None
    if fetched.status is not None:
        key = str(fetched.status)
        stats.statuses[key] = stats.statuses.get(key, 0) + 1
    if fetched.status is None:
        return {"rdap_url": url, "error": f"rdap: {fetched.error}"}
    try:
        result = rdap.parse_rdap_domain(fetched.status, fetched.body)
    except SourceFormatError as exc:
        return {"rdap_url": url, "error": f"rdap: {exc}"}
    if result.error:
        return {"rdap_url": url, "error": f"rdap: {result.error}"}
    return {
        "rdap_url": url,
        "registered": result.registered,
        "rdap_status": result.normalised_statuses,
        "expiration_date": result.expiration_date,
        "registration_date": result.registration_date,
        "last_changed": result.last_changed,
    }


def _wayback_part(fetched: Fetched) -> dict:
    if fetched.status is None:
        return {"error": f"wayback: {fetched.error}"}
    try:
        result = wayback.parse_wayback_cdx(fetched.body, fetched.status)
    except SourceFormatError as exc:
        return {"error": f"wayback: {exc}"}
    return {
        "wayback_snapshots": result.snapshots,
        "first_archived_year": result.first_archived_year,
    }


def look_up(
    http: HttpSources,
    engine: Engine,
    domains: Sequence[str],
    now: datetime,
    ttl: timedelta,
    max_lookups: int,
) -> tuple[dict[str, dict], LookupStats]:
    """A check (RDAP + Wayback fields, `checked_at`, `error`) for every domain in `domains`.

    At most `max_lookups` uncached names are looked up; the others get an error saying they
    were deferred (and are looked up first by a later run, since they are still uncached).
    """
    stats = LookupStats()
    checks = cached_checks(engine, domains, now, ttl)
    stats.cached = len(checks)
    missing = [d for d in dict.fromkeys(domains) if d not in checks]
    for domain in missing[max_lookups:]:
        checks[domain] = {
            "domain": domain,
            "error": f"lookup deferred: more than {max_lookups} uncached names in this run",
        }
    stats.deferred = max(0, len(missing) - max_lookups)
    missing = missing[:max_lookups]
    if not missing:
        return checks, stats
    bootstrap = _bootstrap(http, stats)
    rdap_urls = {d: rdap.rdap_url(bootstrap, d) for d in missing} if bootstrap else {}
    wayback_base = http.base_url(Source.WAYBACK, wayback.DEFAULT_BASE)
    requests = [
        SourceRequest(Source.RDAP, url, term=d, headers=rdap.HEADERS)
        for d, url in rdap_urls.items()
        if url
    ]
    requests += [
        SourceRequest(Source.WAYBACK, wayback.wayback_request(d, wayback_base), term=d)
        for d in missing
    ]
    fetched = {(f.request.source, f.request.term): f for f in http.fetch_all(requests)}
    fresh = []
    for domain in missing:
        if bootstrap:
            part = _rdap_part(domain, rdap_urls[domain], fetched.get((Source.RDAP, domain)), stats)
        else:
            part = {"error": f"rdap: bootstrap unavailable ({stats.bootstrap_error})"}
        archive = _wayback_part(fetched[(Source.WAYBACK, domain)])
        errors = [e for e in (part.pop("error", None), archive.pop("error", None)) if e]
        check = {"domain": domain, "checked_at": now, **part, **archive}
        check["error"] = "; ".join(errors) or None
        stats.errors += bool(errors)
        fresh.append(check)
    store_checks(engine, fresh)
    stats.looked_up = len(fresh)
    checks.update({c["domain"]: c for c in fresh})
    return checks, stats

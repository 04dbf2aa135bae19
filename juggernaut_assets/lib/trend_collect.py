"""Turning fetched source responses into `market_trends` rows and a per-source report. Pure.

Each response is parsed by its source's module; a response that failed (network, HTTP error,
malformed body) becomes an error in its source's outcome instead of an exception, so one bad
source or feed never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

import polars as pl

from juggernaut_assets.lib.sources import TREND_SOURCES, SourceFormatError, SourceRequest
from juggernaut_assets.lib.trends import OBSERVATION_SCHEMA

MAX_ERRORS_SHOWN = 5


class Response(Protocol):
    request: SourceRequest
    status: int | None
    body: bytes
    error: str | None


@dataclass
class SourceOutcome:
    """What one source gave in one scan: rows, requests, HTTP statuses, errors."""

    source: str
    requests: int = 0
    rows: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: int = 0

    @property
    def failed(self) -> bool:
        """Every request of the source failed (some failing is a partial result, not a failure)."""
        return self.requests > 0 and len(self.errors) >= self.requests

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "rows": self.rows,
            "http_statuses": self.statuses,
            "errors": len(self.errors),
            "first_errors": self.errors[:MAX_ERRORS_SHOWN],
            "skipped_items": self.skipped,
        }


def _parse_one(response: Response, day: date, outcome: SourceOutcome) -> list[dict]:
    request = response.request
    if response.status is not None:
        key = str(response.status)
        outcome.statuses[key] = outcome.statuses.get(key, 0) + 1
    what = f" ({request.term})" if request.term else ""
    if response.status is None:
        outcome.errors.append(f"{request.url}{what}: {response.error}")
        return []
    try:
        parsed = TREND_SOURCES[request.source].parse(request, response.status, response.body, day)
    except SourceFormatError as exc:
        outcome.errors.append(f"{exc}{what}")
        return []
    outcome.skipped += len(parsed.skipped)
    return [
        {
            "term": row.term,
            "source": row.source,
            "metric": row.metric,
            "value": row.value,
            "observed_date": row.observed_date,
            "url": row.url,
        }
        for row in parsed
    ]


def collect_observations(
    responses: Iterable[Response], day: date, fetched_at: datetime, sources: Iterable[str]
) -> tuple[pl.DataFrame, dict[str, SourceOutcome]]:
    """All rows of all responses (schema `OBSERVATION_SCHEMA`) and each source's outcome."""
    outcomes = {name: SourceOutcome(name) for name in sources}
    rows: list[dict] = []
    for response in responses:
        outcome = outcomes.setdefault(
            response.request.source, SourceOutcome(response.request.source)
        )
        outcome.requests += 1
        parsed = _parse_one(response, day, outcome)
        outcome.rows += len(parsed)
        rows.extend(parsed)
    frame = pl.DataFrame(
        [{**row, "fetched_at": fetched_at} for row in rows], schema=OBSERVATION_SCHEMA
    )
    return frame, outcomes

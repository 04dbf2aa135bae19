"""Reading the state of every followed pull request with as few GitHub requests as possible.

Pull requests are read 100 to a GraphQL request. The query's `rateLimit` answer is kept: the
sensor stops before the points left would drop under `RESERVE_POINTS` (and waits for the
reset), and a secondary-limit answer (403/429 with `Retry-After`) stops it for as long as
GitHub asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from juggernaut_assets.execution.pr_store import FollowedPr
from juggernaut_assets.lib.pr_query import (
    ObservedPr,
    RateLimit,
    build_query,
    chunks,
    parse_answer,
)
from juggernaut_assets.resources.github import GitHubApiError, GitHubRateLimited, GitHubResource

RESERVE_POINTS = 200
"""GraphQL points left untouched for everything else that uses the token."""


@dataclass
class Budget:
    """What the sensor knows about the token's GraphQL budget (kept in its cursor)."""

    remaining: int | None = None
    reset_at: datetime | None = None
    wait_until: datetime | None = None
    last_cost: int = 1

    def as_cursor(self) -> dict[str, object]:
        return {
            "remaining": self.remaining,
            "reset_at": self.reset_at.isoformat() if self.reset_at else None,
            "wait_until": self.wait_until.isoformat() if self.wait_until else None,
            "last_cost": self.last_cost,
        }

    @classmethod
    def from_cursor(cls, data: dict[str, object] | None) -> Budget:
        data = data or {}

        def when(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        remaining = data.get("remaining")
        return cls(
            remaining=int(remaining) if isinstance(remaining, int) else None,
            reset_at=when("reset_at"),
            wait_until=when("wait_until"),
            last_cost=int(data.get("last_cost") or 1),  # type: ignore[arg-type]
        )

    def must_wait(self, now: datetime) -> str | None:
        """Why no request may be made now, or None."""
        if self.wait_until and now < self.wait_until:
            return f"GitHub asked to wait until {self.wait_until:%H:%M:%S} UTC"
        if self.remaining is not None and self.remaining - self.last_cost < RESERVE_POINTS:
            if self.reset_at and now >= self.reset_at:
                self.remaining = None
                return None
            until = f" until {self.reset_at:%H:%M:%S} UTC" if self.reset_at else ""
            return f"GraphQL budget low ({self.remaining} points left), waiting{until}"
        return None

    def spent(self, rate: RateLimit | None) -> None:
        if rate is None:
            return
        self.remaining, self.last_cost = rate.remaining, max(rate.cost, 1)
        if rate.reset_at:
            self.reset_at = datetime.fromisoformat(rate.reset_at.replace("Z", "+00:00"))


@dataclass
class Refresh:
    observed: list[tuple[FollowedPr, ObservedPr]] = field(default_factory=list)
    missing: list[tuple[FollowedPr, str]] = field(default_factory=list)
    requests: int = 0
    points: int = 0
    stopped: str | None = None
    """Why the refresh stopped before reading every pull request."""
    unread: int = 0


def refresh(
    github: GitHubResource,
    http: httpx.Client,
    prs: Sequence[FollowedPr],
    budget: Budget,
    now: datetime | None = None,
) -> Refresh:
    """Read `prs` from GitHub, 100 per request, within `budget` (updated in place)."""
    now = now or datetime.now(UTC)
    result = Refresh()
    by_id = {pr.id: pr for pr in prs}
    groups = list(chunks([pr.ref for pr in prs]))
    for index, refs in enumerate(groups):
        wait = budget.must_wait(now)
        if wait:
            result.stopped = wait
            result.unread = sum(len(g) for g in groups[index:])
            break
        query = build_query(refs)
        result.requests += 1
        try:
            data = github.graphql(http, query.text)
        except GitHubRateLimited as exc:
            budget.wait_until = now + timedelta(seconds=exc.retry_after_s)
            result.stopped = f"{exc} (retry after {exc.retry_after_s:g} s)"
            result.unread = sum(len(g) for g in groups[index:])
            break
        except (GitHubApiError, httpx.HTTPError) as exc:
            result.stopped = f"GitHub GraphQL failed: {exc}"
            result.unread = sum(len(g) for g in groups[index:])
            break
        answer = parse_answer(query, data)
        budget.spent(answer.rate_limit)
        result.points += answer.rate_limit.cost if answer.rate_limit else 0
        result.observed += [(by_id[key], obs) for key, obs in answer.observed.items()]
        result.missing += [(by_id[key], why) for key, why in answer.missing.items()]
    return result

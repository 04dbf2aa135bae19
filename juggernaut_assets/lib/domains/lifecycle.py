"""Where a registered name is in the expiry lifecycle, and when it should drop. Pure.

The gTLD lifecycle (shared/sources.md): after expiration up to 45 days of auto-renew grace,
then 30 days of redemption, then 5 days of pending delete, then the name is deleted ("drops")
and can be registered by anyone. RDAP reports the stage in `status[]` (RFC 8056 spellings) and
the dates in `events[]` (`expiration`, `last changed`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta
from enum import StrEnum

AUTO_RENEW_GRACE_DAYS = 45
REDEMPTION_DAYS = 30
PENDING_DELETE_DAYS = 5
DAYS_EXPIRY_TO_DROP = AUTO_RENEW_GRACE_DAYS + REDEMPTION_DAYS + PENDING_DELETE_DAYS


class DomainStatus(StrEnum):
    """RDAP status values (RFC 8056 spelling) that this project reads."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    PENDING_DELETE = "pending delete"
    REDEMPTION_PERIOD = "redemption period"
    PENDING_RESTORE = "pending restore"
    AUTO_RENEW_PERIOD = "auto renew period"
    CLIENT_HOLD = "client hold"
    SERVER_HOLD = "server hold"


DROP_STATUSES = frozenset({DomainStatus.PENDING_DELETE, DomainStatus.REDEMPTION_PERIOD})
"""Statuses that mean the name is on its way to being deleted."""

_EPP_TO_RDAP = {"ok": DomainStatus.ACTIVE}
_CAMEL_BOUNDARY = re.compile(r"([a-z])([A-Z])")
_SEPARATORS = re.compile(r"[\s_-]+")


def normalize_status(status: str) -> str:
    """One status value in RFC 8056 spelling: lower case, words separated by single spaces.

    EPP camelCase and other spellings are accepted: `pendingDelete`, `PENDING_DELETE` and
    `pending-delete` all give `pending delete`; of a WHOIS-style value with a URL only the
    part after `#` is read (`clientHold https://icann.org/epp#clientHold` → `client hold`).
    EPP `ok` maps to RDAP `active` (RFC 8056 §2). Unknown values come back in the same form.
    """
    text = _CAMEL_BOUNDARY.sub(r"\1 \2", status.rpartition("#")[2])
    text = _SEPARATORS.sub(" ", text).strip().lower()
    return str(_EPP_TO_RDAP.get(text, text))


def normalize_statuses(statuses: Iterable[str] | str | None) -> frozenset[str]:
    """`normalize_status` over a list, or over a comma-separated string; None gives none."""
    if statuses is None:
        return frozenset()
    if isinstance(statuses, str):
        statuses = statuses.split(",")
    return frozenset(s for s in (normalize_status(x) for x in statuses) if s)


def estimate_drop_date(
    statuses: Iterable[str] | str | None,
    expiration_date: date | None,
    last_changed: date | None,
    today: date,
) -> date | None:
    """The day the name is expected to be deleted, or None when no drop is expected.

    Statuses are normalised first; the first rule that applies wins:

    1. `pending restore`: the owner is restoring the name → None.
    2. `pending delete`: the 5-day pending delete started at `last changed` → that + 5 days;
       without `last changed`, at the latest today + 5 days.
    3. `redemption period`: the name drops 35 days (30 redemption + 5 pending delete) after
       redemption starts. The start is `last changed` when given; otherwise the end of the
       auto-renew grace (expiration + 45 days) but no later than today; otherwise today.
    4. `auto renew period`: the registry renewed the name and the registrar may still delete it
       in the 45-day grace; if it does at the end of grace, the name drops 80 days after the
       grace starts (45 + 30 + 5). The start is `last changed` when given, else the expiration
       date if it has passed, else today. (Registries often move the expiration date a year on
       when the grace starts, so a future expiration is not trusted here.)
    5. No drop status and the expiration date has passed: expiration + 80 days (45 + 30 + 5).
       If that day has also passed the name was kept (renewed, or a registry with other rules)
       → None.
    6. Otherwise (not expired, or no dates) → None.

    For rules 2-4 a date already past is moved to `today`: the name is still in the lifecycle,
    so it has not dropped yet and may drop any day. Hold statuses (`client hold`,
    `server hold`) do not change the estimate.
    """
    found = normalize_statuses(statuses)
    if DomainStatus.PENDING_RESTORE in found:
        return None
    if DomainStatus.PENDING_DELETE in found:
        if last_changed is None:
            return today + timedelta(days=PENDING_DELETE_DAYS)
        return max(today, last_changed + timedelta(days=PENDING_DELETE_DAYS))
    if DomainStatus.REDEMPTION_PERIOD in found:
        if last_changed is not None:
            start = last_changed
        elif expiration_date is not None:
            start = min(today, expiration_date + timedelta(days=AUTO_RENEW_GRACE_DAYS))
        else:
            start = today
        return max(today, start + timedelta(days=REDEMPTION_DAYS + PENDING_DELETE_DAYS))
    if DomainStatus.AUTO_RENEW_PERIOD in found:
        if last_changed is not None:
            start = last_changed
        elif expiration_date is not None and expiration_date <= today:
            start = expiration_date
        else:
            start = today
        return max(today, start + timedelta(days=DAYS_EXPIRY_TO_DROP))
    if expiration_date is not None and expiration_date < today:
        drop = expiration_date + timedelta(days=DAYS_EXPIRY_TO_DROP)
        return drop if drop >= today else None
    return None

from __future__ import annotations

from datetime import date

import pytest

from juggernaut_assets.lib.domains.lifecycle import (
    DomainStatus,
    estimate_drop_date,
    normalize_status,
)

TODAY = date(2025, 6, 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pendingDelete", "pending delete"),
        ("pending delete", "pending delete"),
        ("PENDING_DELETE", "pending delete"),
        (" Redemption  Period ", "redemption period"),
        ("redemptionPeriod", "redemption period"),
        ("autoRenewPeriod", "auto renew period"),
        ("auto renew period", "auto renew period"),
        ("clientHold", "client hold"),
        ("clientTransferProhibited", "client transfer prohibited"),
        ("clientHold https://icann.org/epp#clientHold", "client hold"),
        ("ok", "active"),
        ("serverHold", "server hold"),
    ],
)
def test_statuses_are_normalised_to_rfc8056_spelling(raw: str, expected: str) -> None:
    assert normalize_status(raw) == expected


def test_pending_delete_drops_five_days_after_last_changed() -> None:
    drop = estimate_drop_date(["pendingDelete"], date(2025, 4, 1), date(2025, 5, 30), TODAY)
    assert drop == date(2025, 6, 4)


def test_pending_delete_without_last_changed_drops_within_five_days() -> None:
    assert estimate_drop_date(["pending delete"], None, None, TODAY) == date(2025, 6, 6)


def test_overdue_pending_delete_is_expected_today() -> None:
    assert estimate_drop_date(["pending delete"], None, date(2025, 5, 1), TODAY) == TODAY


def test_redemption_drops_35_days_after_it_started() -> None:
    drop = estimate_drop_date(["redemption period"], date(2025, 3, 20), date(2025, 5, 10), TODAY)
    assert drop == date(2025, 6, 14)  # 10 May + 35 days


def test_redemption_without_last_changed_starts_at_end_of_grace() -> None:
    # expiration 1 Apr + 45 days = 16 May; + 35 days = 20 Jun
    drop = estimate_drop_date(["redemptionPeriod"], date(2025, 4, 1), None, TODAY)
    assert drop == date(2025, 6, 20)


def test_redemption_start_is_never_after_today() -> None:
    # expiration 10 May + 45 days = 24 Jun is later than today, so it started today at the latest
    drop = estimate_drop_date(["redemption period"], date(2025, 5, 10), None, TODAY)
    assert drop == date(2025, 7, 6)  # 1 Jun + 35 days


def test_redemption_with_no_dates_starts_today() -> None:
    assert estimate_drop_date("redemption period", None, None, TODAY) == date(2025, 7, 6)


def test_auto_renew_grace_drops_80_days_after_it_started() -> None:
    # grace started 20 May (last changed): + 45 + 30 + 5 = 8 Aug
    drop = estimate_drop_date(["autoRenewPeriod"], date(2026, 5, 20), date(2025, 5, 20), TODAY)
    assert drop == date(2025, 8, 8)


def test_auto_renew_grace_ignores_an_expiration_moved_into_the_future() -> None:
    drop = estimate_drop_date(["auto renew period"], date(2026, 5, 20), None, TODAY)
    assert drop == date(2025, 8, 20)  # today + 80 days


def test_expired_name_without_status_follows_the_whole_lifecycle() -> None:
    # 20 May + 80 days = 8 Aug
    drop = estimate_drop_date(["client transfer prohibited"], date(2025, 5, 20), None, TODAY)
    assert drop == date(2025, 8, 8)


def test_long_expired_name_still_registered_is_not_expected_to_drop() -> None:
    assert estimate_drop_date([], date(2025, 1, 1), None, TODAY) is None


def test_name_not_yet_expired_is_not_expected_to_drop() -> None:
    assert estimate_drop_date(["active"], date(2026, 1, 1), None, TODAY) is None


def test_pending_restore_is_not_expected_to_drop() -> None:
    statuses = ["redemption period", "pendingRestore"]
    assert estimate_drop_date(statuses, date(2025, 4, 1), date(2025, 5, 10), TODAY) is None


def test_hold_status_does_not_change_the_estimate() -> None:
    with_hold = estimate_drop_date(["clientHold", "pendingDelete"], None, date(2025, 5, 30), TODAY)
    assert with_hold == date(2025, 6, 4)


def test_no_information_gives_no_date() -> None:
    assert estimate_drop_date(None, None, None, TODAY) is None


def test_status_constants_use_rfc8056_spelling() -> None:
    assert DomainStatus.PENDING_DELETE == "pending delete"
    assert DomainStatus.REDEMPTION_PERIOD == "redemption period"

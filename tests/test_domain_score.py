from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest

from juggernaut_assets.lib.domains.score import (
    COMPONENTS,
    ScoreWeights,
    covered_by_words,
    dictionary_words,
    score_domain_rowwise,
    score_domains,
)

TODAY = date(2025, 6, 1)
DEFAULT_WEIGHTS = ScoreWeights()


def candidate(domain: str | None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "domain": domain,
        "tld": domain.rsplit(".", 1)[-1] if domain else None,
        "registered": None,
        "rdap_status": [],
        "estimated_drop_date": None,
        "wayback_snapshots": None,
        "first_archived_year": None,
        "matched_terms": [],
    }
    return row | values


def scored(*rows: dict[str, Any], weights: ScoreWeights = DEFAULT_WEIGHTS) -> list[dict[str, Any]]:
    frame = pl.DataFrame(
        list(rows),
        schema={
            "domain": pl.String,
            "tld": pl.String,
            "registered": pl.Boolean,
            "rdap_status": pl.List(pl.String),
            "estimated_drop_date": pl.Date,
            "wayback_snapshots": pl.Int64,
            "first_archived_year": pl.Int64,
            "matched_terms": pl.List(pl.String),
        },
    )
    return score_domains(frame, today=TODAY, weights=weights).to_dicts()


def test_available_dictionary_com_with_long_history_scores_high() -> None:
    row = scored(
        candidate(
            "bestbuy.com",
            registered=False,
            wayback_snapshots=250,
            first_archived_year=2001,
            matched_terms=["buy"],
        )
    )[0]
    # length 7 → 15; best+buy cover 7/7 → 20; .com 10; 1 term 5; ≥200 snapshots 10 + 20 years
    # (capped) × 0.5 = 10 → 20; available 20
    assert {c: row[c] for c in COMPONENTS} == {
        "score_length": 15.0,
        "score_digits": 0.0,
        "score_hyphens": 0.0,
        "score_words": 20.0,
        "score_tld": 10.0,
        "score_trend": 5.0,
        "score_archive": 20.0,
        "score_timing": 20.0,
    }
    assert row["score"] == 90.0


def test_digits_and_hyphens_are_penalised_per_character() -> None:
    row = scored(candidate("a-1b-2.org", registered=True))[0]
    # label a-1b-2: 6 chars → 15; 2 digits → −16; 2 hyphens → −8; .org 6; registered → −15
    assert row["score_length"] == 15.0
    assert row["score_digits"] == -16.0
    assert row["score_hyphens"] == -8.0
    assert row["score_tld"] == 6.0
    assert row["score_timing"] == -15.0
    assert row["score"] == 0.0  # 15 − 16 − 8 + 0 + 6 − 15 = −18, clipped


def test_length_outside_5_to_14_loses_3_points_a_character() -> None:
    rows = scored(candidate("abc.com"), candidate("a" * 16 + ".com"), candidate("q" * 30 + ".com"))
    assert [r["score_length"] for r in rows] == [9.0, 9.0, 0.0]


def test_word_coverage_is_the_share_of_the_label_in_words() -> None:
    row = scored(candidate("qxzbest.net"))[0]
    assert row["score_words"] == 20.0 * 4 / 7
    assert covered_by_words("qxzbest") == 4


def test_words_are_matched_longest_first_left_to_right() -> None:
    words = set(dictionary_words())
    assert {"shoes", "sale", "the", "best"} <= words
    assert covered_by_words("shoessale") == 9
    assert covered_by_words("thebest") == 7
    assert covered_by_words("zzzz") == 0


def test_punycode_labels_get_no_word_points_and_count_only_real_hyphens() -> None:
    row = scored(candidate("xn--bcher-kva.de"))[0]
    assert row["score_words"] == 0.0
    assert row["score_hyphens"] == 0.0
    assert row["score_digits"] == 0.0


def test_two_label_public_suffix_scores_the_registrable_label() -> None:
    row = scored(candidate("shoes.co.uk", tld="uk"))[0]
    assert row["score_words"] == 20.0
    assert row["score_length"] == 15.0
    assert row["score_tld"] == 0.0


def test_drop_date_points_fall_linearly_over_60_days() -> None:
    rows = scored(
        *(
            candidate("alpha.com", registered=True, estimated_drop_date=TODAY + timedelta(days=d))
            for d in (-3, 0, 15, 30, 60, 90)
        )
    )
    assert [r["score_timing"] for r in rows] == [20.0, 20.0, 15.0, 10.0, 0.0, 0.0]


def test_drop_status_without_date_and_registered_without_status() -> None:
    rows = scored(
        candidate("alpha.com", registered=True, rdap_status=["pendingDelete"]),
        candidate("alpha.com", registered=True, rdap_status=["Redemption Period"]),
        candidate("alpha.com", registered=True, rdap_status=["client hold"]),
        candidate("alpha.com", registered=None),
    )
    assert [r["score_timing"] for r in rows] == [10.0, 10.0, -15.0, 0.0]


def test_archive_points_from_snapshots_and_birth_year() -> None:
    rows = scored(
        candidate("alpha.com", wayback_snapshots=0, first_archived_year=2031),
        candidate("alpha.com", wayback_snapshots=1, first_archived_year=2025),
        candidate("alpha.com", wayback_snapshots=10, first_archived_year=2021),
        candidate("alpha.com", wayback_snapshots=199, first_archived_year=2015),
        candidate("alpha.com", wayback_snapshots=200, first_archived_year=1996),
    )
    assert [r["score_archive"] for r in rows] == [0.0, 2.0, 6.0, 12.0, 20.0]


def test_trend_points_are_capped() -> None:
    rows = scored(
        candidate("alpha.com", matched_terms=None),
        candidate("alpha.com", matched_terms=["ai", "agents"]),
        candidate("alpha.com", matched_terms=["a", "b", "c", "d"]),
    )
    assert [r["score_trend"] for r in rows] == [0.0, 10.0, 15.0]


def test_row_without_domain_has_null_score() -> None:
    row = scored(candidate(None))[0]
    assert row["score"] is None
    assert all(row[c] is None for c in COMPONENTS)


def test_status_may_be_a_comma_separated_string_and_columns_may_be_missing() -> None:
    frame = pl.DataFrame(
        {"domain": ["alpha.com"], "tld": ["com"], "rdap_status": ["clientHold, pendingDelete"]}
    )
    row = score_domains(frame.lazy(), today=TODAY).row(0, named=True)
    assert row["score_timing"] == 10.0
    assert row["score"] == 15.0 + 20.0 + 10.0 + 10.0  # length, words (alpha), .com, timing


def test_custom_weights_change_the_components() -> None:
    weights = ScoreWeights(tld_points=(("io", 12.0),), other_tld_points=-1.0, digit_penalty=1.0)
    rows = scored(candidate("ab1cd.io"), candidate("ab1cd.com"), weights=weights)
    assert [r["score_tld"] for r in rows] == [12.0, -1.0]
    assert rows[0]["score_digits"] == -1.0


def _varied_rows(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = list(dictionary_words())
    pieces = [*words[:400], "4u", "24", "-", "x", "qz", "online", "shop", "xn--bcher-kva"]
    tlds = ["com", "net", "org", "io", "de", "co.uk", "com.au", "xyz"]
    statuses = [
        [],
        ["active"],
        ["pendingDelete"],
        ["PENDING_DELETE"],
        ["redemption period", "client hold"],
        ["clientHold https://icann.org/epp#redemptionPeriod"],
        ["autoRenewPeriod"],
        ["pending restore"],
        None,
    ]
    rows = []
    for i in range(n):
        label = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))).strip("-") or "ab"
        if i % 17 == 0:
            label = "a" * rng.randint(1, 63)
        tld = rng.choice(tlds)
        prefix = "shop." if i % 23 == 0 else ""
        rows.append(
            candidate(
                f"{prefix}{label}.{tld}" if i % 97 else None,
                tld=tld.rsplit(".", 1)[-1] if i % 41 else None,
                registered=rng.choice([True, False, None]),
                rdap_status=rng.choice(statuses),
                estimated_drop_date=(
                    TODAY + timedelta(days=rng.randint(-10, 100)) if rng.random() < 0.5 else None
                ),
                wayback_snapshots=rng.choice([None, 0, 1, 9, 10, 49, 50, 199, 200, 5000]),
                first_archived_year=rng.choice([None, 1990, 1996, 2010, 2024, 2025, 2030]),
                matched_terms=rng.choice([None, [], ["ai"], ["a", "b"], ["a", "b", "c", "d"]]),
            )
        )
    return rows


@pytest.mark.parametrize("weights", [ScoreWeights(), ScoreWeights(timing_horizon_days=7)])
def test_polars_and_rowwise_scores_are_identical(weights: ScoreWeights) -> None:
    rows = _varied_rows(600)
    vectorised = scored(*rows, weights=weights)
    for row, expected in zip(rows, vectorised, strict=True):
        by_row = score_domain_rowwise(row, today=TODAY, weights=weights)
        assert {k: by_row[k] for k in (*COMPONENTS, "score")} == {
            k: expected[k] for k in (*COMPONENTS, "score")
        }, row["domain"]


def test_weights_reject_a_zero_day_horizon() -> None:
    with pytest.raises(ValueError, match="timing_horizon_days"):
        ScoreWeights(timing_horizon_days=0)

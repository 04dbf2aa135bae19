"""1,000,000 expired-domain candidates → `score_domains` (polars) against the row-wise baseline.

Candidates are generated deterministically (seed 7): labels built from dictionary words, random
letters, digits and hyphens, a few punycode and `.co.uk` names, with RDAP status, drop dates,
Wayback history and matched trend terms drawn at random. The polars path is timed on all rows;
the row-wise Python implementation (`score_domain_rowwise`) on a sample, extrapolated to all
rows unless `--rowwise-rows` covers them. Targets: polars ≤ 3 s on 1,000,000 rows, ≥ 20× the
row-wise speed.

    .venv/bin/python -m benchmarks.domain_scoring [--rows 1000000] [--rowwise-rows 50000]
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date

import numpy as np
import polars as pl

from juggernaut_assets.lib.domains.score import (
    dictionary_words,
    score_domain_rowwise,
    score_domains,
)

ROWS = 1_000_000
ROWWISE_ROWS = 50_000
TODAY = date(2025, 6, 1)
TLDS = ["com", "net", "org", "io", "co", "xyz", "de", "co.uk"]
TLD_WEIGHTS = [0.45, 0.12, 0.1, 0.08, 0.07, 0.08, 0.06, 0.04]
STATUS_SETS = [
    [],
    ["active"],
    ["client transfer prohibited"],
    ["pendingDelete"],
    ["redemption period"],
    ["auto renew period", "client hold"],
    ["serverHold"],
]
TERM_SETS = [[], [], [], ["ai"], ["solar"], ["ai", "agents"], ["crypto", "wallet", "defi", "nft"]]
PUNYCODE = ["xn--bcher-kva", "xn--mnchen-3ya", "xn--80ak6aa92e", "xn--caf-dma"]


def candidates(n: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(dictionary_words())
    common = words[np.argsort([len(w) for w in words], kind="stable")][: len(words) // 2]

    def pick(probability: float) -> pl.Series:
        chosen = common[rng.integers(0, len(common), n)]
        return pl.Series(np.where(rng.random(n) < probability, chosen, ""))

    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    junk = ["".join(row) for row in letters[rng.integers(0, 26, (4096, 6))]]
    junk_pick = pl.Series(junk)[rng.integers(0, len(junk), n)].str.slice(
        0, pl.Series(rng.integers(1, 7, n))
    )
    frame = pl.DataFrame(
        {
            "w1": pick(0.9),
            "sep": pl.Series(np.where(rng.random(n) < 0.12, "-", "")),
            "w2": pick(0.6),
            "junk": pl.Series(np.where(rng.random(n) < 0.3, junk_pick.to_numpy(), "")),
            "digits": pl.Series(np.where(rng.random(n) < 0.15, rng.integers(0, 999, n), -1)),
            "tld": pl.Series(rng.choice(TLDS, n, p=TLD_WEIGHTS)),
        }
    )
    label = pl.concat_str(
        "w1",
        "sep",
        "w2",
        "junk",
        pl.when(pl.col("digits") >= 0).then(pl.col("digits").cast(pl.String)).otherwise(pl.lit("")),
    )
    label = pl.when(label.str.len_chars() < 2).then(label + "zq").otherwise(label)
    punycode = pl.Series(PUNYCODE)[rng.integers(0, len(PUNYCODE), n)]
    label = pl.when(pl.Series(rng.random(n) < 0.01)).then(pl.lit(punycode)).otherwise(label)
    drop_offsets = rng.integers(-5, 120, n)
    return frame.select(
        domain=label + "." + pl.col("tld"),
        tld=pl.col("tld").str.split(".").list.last(),
        registered=pl.Series(rng.choice([1, 0, -1], n, p=[0.7, 0.2, 0.1])).replace_strict(
            {1: True, 0: False, -1: None}, return_dtype=pl.Boolean
        ),
        rdap_status=pl.Series(STATUS_SETS, dtype=pl.List(pl.String))[
            rng.integers(0, len(STATUS_SETS), n)
        ],
        estimated_drop_date=pl.when(pl.Series(rng.random(n) < 0.4)).then(
            pl.lit(TODAY) + pl.duration(days=pl.Series(drop_offsets))
        ),
        wayback_snapshots=pl.when(pl.Series(rng.random(n) < 0.7)).then(
            pl.Series(rng.geometric(0.01, n))
        ),
        first_archived_year=pl.when(pl.Series(rng.random(n) < 0.6)).then(
            pl.Series(rng.integers(1996, 2026, n))
        ),
        matched_terms=pl.Series(TERM_SETS, dtype=pl.List(pl.String))[
            rng.integers(0, len(TERM_SETS), n)
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--rowwise-rows", type=int, default=ROWWISE_ROWS)
    args = parser.parse_args()

    start = time.perf_counter()
    frame = candidates(args.rows)
    generated = time.perf_counter() - start
    dictionary_words()
    score_domains(frame.head(100), today=TODAY)  # word list loaded, automaton warmed

    start = time.perf_counter()
    scored = score_domains(frame, today=TODAY)
    polars_seconds = time.perf_counter() - start

    sample_rows = min(args.rowwise_rows, args.rows)
    sample = frame.head(sample_rows).to_dicts()
    start = time.perf_counter()
    rowwise = [score_domain_rowwise(row, today=TODAY) for row in sample]
    sample_seconds = time.perf_counter() - start
    rowwise_seconds = sample_seconds * args.rows / sample_rows
    extrapolated = sample_rows < args.rows

    expected = scored["score"].head(sample_rows).to_list()
    mismatches = sum(a != r["score"] for a, r in zip(expected, rowwise, strict=True))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"candidates: {args.rows:,} generated in {generated:.2f} s (seed 7)")
    print(f"score_domains (polars): {polars_seconds:.3f} s for {args.rows:,} rows (target ≤ 3 s)")
    if extrapolated:
        print(
            f"score_domain_rowwise: {sample_seconds:.2f} s for {sample_rows:,} rows → "
            f"{rowwise_seconds:.1f} s for {args.rows:,} (extrapolated)"
        )
    else:
        print(f"score_domain_rowwise: {rowwise_seconds:.2f} s for {args.rows:,} rows")
    print(f"speed-up: {rowwise_seconds / polars_seconds:.1f}× (target ≥ 20×)")
    print(f"score mismatches between the two on the sample: {mismatches}")
    print(
        f"score: mean {scored['score'].mean():.1f}, "
        f"≥ 70 for {scored.filter(pl.col('score') >= 70).height:,} rows"
    )
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

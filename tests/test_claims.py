"""CLAIM/SOURCE/QUOTE blocks: parsing, quote normalisation and matching, the report."""

from __future__ import annotations

from juggernaut_assets.lib.claims import (
    MIN_QUOTE_CHARS,
    Claim,
    DroppedClaim,
    ReportSource,
    SkippedSource,
    claim_problem,
    normalise,
    parse_claims,
    quote_in_text,
    render_report,
)

TEXTS = {
    1: "Sales grew by 12 percent in 2025.\nThe company’s “flagship” store  closed in May.",
    2: "Prices fell by 3 percent over the same period, the survey says.",
}


def test_blocks_are_parsed_and_text_outside_them_is_ignored():
    answer = (
        "Here is what the sources say.\n\n"
        "CLAIM: Sales grew in 2025.\nSOURCE: 1\nQUOTE: Sales grew by 12 percent in 2025.\n\n"
        "Some commentary between blocks.\n\n"
        "**CLAIM:** Prices fell.\n**SOURCE:** [2]\n**QUOTE:** Prices fell by 3 percent\n"
        "over the same period\n\nThat is all."
    )
    claims, malformed = parse_claims(answer)
    assert malformed == []
    assert claims == [
        Claim("Sales grew in 2025.", 1, "Sales grew by 12 percent in 2025."),
        Claim("Prices fell.", 2, "Prices fell by 3 percent\nover the same period"),
    ]


def test_a_block_missing_a_part_or_with_a_bad_source_is_malformed():
    answer = (
        "CLAIM: No quote here.\nSOURCE: 1\n\n"
        "CLAIM: No source.\nQUOTE: Sales grew by 12 percent\n\n"
        "CLAIM: Two sources.\nSOURCE: 1 and 2\nQUOTE: Sales grew by 12 percent\n\n"
        "SOURCE: 2\nQUOTE: a lone quote without a claim\n\n"
        "CLAIM: Twice.\nSOURCE: 1\nSOURCE: 2\nQUOTE: Sales grew by 12 percent\n"
    )
    claims, malformed = parse_claims(answer)
    assert claims == []
    assert [m.reason for m in malformed] == [
        "the block has no QUOTE:",
        "the block has no SOURCE:",
        "SOURCE: '1 and 2' is not one source number",
        "the block has no CLAIM:",
        "the block has more than one SOURCE:",
    ]


def test_normalise_straightens_quotes_and_collapses_whitespace():
    assert normalise("  it’s  a\n“test”\u00a0here\u200b ") == 'it\'s a "test" here'


def test_quote_is_found_after_normalising_whitespace_and_quotes_only():
    assert quote_in_text('The company\'s "flagship" store closed', TEXTS[1])
    assert quote_in_text('"Sales grew by 12 percent in 2025."', TEXTS[1])
    assert not quote_in_text("sales grew by 12 percent in 2025", TEXTS[1])
    assert not quote_in_text("Sales grew by 13 percent in 2025", TEXTS[1])
    assert not quote_in_text("Sales grew ... in 2025", TEXTS[1])


def test_claim_problem_names_misquote_wrong_source_unknown_source_and_short_quote():
    good = Claim("Sales grew.", 1, "Sales grew by 12 percent in 2025.")
    misquote = Claim("Sales grew a lot.", 1, "Sales grew by 21 percent in 2025.")
    wrong = Claim("Prices fell.", 1, "Prices fell by 3 percent over the same period")
    unknown = Claim("Something.", 3, "Sales grew by 12 percent in 2025.")
    short = Claim("Sales grew.", 1, "Sales grew")
    assert claim_problem(good, TEXTS) is None
    assert claim_problem(misquote, TEXTS) == "the quote is not found verbatim in source [1]"
    assert claim_problem(wrong, TEXTS) == "the quote is not in source [1]; it is in [2]"
    assert claim_problem(unknown, TEXTS) == "SOURCE 3 is not one of the sources given ([1], [2])"
    assert claim_problem(short, TEXTS) == (
        f"the quote is 10 characters long, too short to support a claim "
        f"(at least {MIN_QUOTE_CHARS})"
    )


def test_report_lists_claims_sources_dropped_claims_and_unused_sources():
    sources = [
        ReportSource(
            1, "http://a/old", "http://a/new", "Sales | 2025", "2026-01-01T00:00:00", "ab"
        ),
        ReportSource(2, "http://b/", "http://b/", "", "2026-01-01T00:00:01", "cd"),
    ]
    report = render_report(
        "How did sales go?",
        [Claim("Sales grew.", 1, "“Sales grew by 12 percent in 2025.”")],
        sources,
        [
            DroppedClaim(
                "Sales doubled.", 2, "x", "the quote is not found verbatim in source [2]", 1
            )
        ],
        [SkippedSource("http://c/missing", "HTTP 404 Not Found")],
        "m/one",
    )
    assert report.startswith("# Research report\n\n## Question\n\n> How did sales go?\n")
    assert "1. Sales grew. [1]\n\n   > Sales grew by 12 percent in 2025.\n" in report
    assert (
        "[1] [Sales \\| 2025](http://a/new) (redirected from http://a/old), fetched "
        "2026-01-01T00:00:00, text sha256 `ab`"
    ) in report
    assert "[2] [http://b/](http://b/)" in report
    assert "- Sales doubled. [2] — the quote is not found verbatim in source [2]" in report
    assert "## Sources not used\n\n- http://c/missing — HTTP 404 Not Found" in report

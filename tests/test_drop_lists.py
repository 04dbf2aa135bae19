from __future__ import annotations

import gzip

import polars as pl

from juggernaut_assets.lib.domains.drop_lists import (
    DROP_LIST_SCHEMA,
    NOT_A_LIST_BINARY,
    NOT_A_LIST_HTML,
    parse_drop_list,
    read_drop_list_bytes,
)


def test_one_name_a_line_skips_blank_lines_and_comments() -> None:
    frame = parse_drop_list("# drops for 2025-06-01\n\nExample.com\n  shop.net  \n", "pool")
    assert frame.schema == DROP_LIST_SCHEMA
    assert frame.to_dicts() == [
        {
            "raw": "Example.com",
            "domain": "example.com",
            "tld": "com",
            "source": "pool",
            "line": 3,
            "error": None,
        },
        {
            "raw": "shop.net",
            "domain": "shop.net",
            "tld": "net",
            "source": "pool",
            "line": 4,
            "error": None,
        },
    ]


def test_junk_lines_become_error_rows() -> None:
    frame = parse_drop_list("good.com\nnot a domain\nlocalhost\n", "s")
    assert frame["domain"].to_list() == ["good.com", None, None]
    assert frame["line"].to_list() == [1, 2, 3]
    errors = frame["error"].to_list()
    assert errors[0] is None
    assert "invalid character ' '" in errors[1]
    assert "single label" in errors[2]


def test_duplicate_names_are_kept_once_at_their_first_line() -> None:
    frame = parse_drop_list("a.com\nb.com\nA.COM.\nb.com\n", "s")
    assert frame.select("domain", "line").rows() == [("a.com", 1), ("b.com", 2)]


def test_idn_and_its_punycode_count_as_the_same_name() -> None:
    frame = parse_drop_list("bücher.de\nxn--bcher-kva.de\n", "s")
    assert frame["domain"].to_list() == ["xn--bcher-kva.de"]


def test_csv_reads_the_domain_column_whatever_its_case_and_position() -> None:
    text = 'Rank,"DOMAIN",Price\n1,"alpha.com",10\n2,beta.org,20\n'
    frame = parse_drop_list(text, "csv")
    assert frame.select("domain", "line").rows() == [("alpha.com", 2), ("beta.org", 3)]


def test_csv_with_quoted_comma_and_multiline_field() -> None:
    text = 'note,domain\n"cheap, short",gamma.io\n"two\nlines",delta.com\n'
    frame = parse_drop_list(text, "csv")
    assert frame.select("domain", "line").rows() == [("gamma.io", 2), ("delta.com", 3)]


def test_csv_with_semicolons_and_a_short_row() -> None:
    frame = parse_drop_list("id;domain\n1;one.com\n2\n# comment\n\n3;two.com\n", "csv")
    assert frame["domain"].to_list() == ["one.com", None, "two.com"]
    assert frame["line"].to_list() == [2, 3, 6]
    assert frame["error"][1] == "row has 1 field; the domain is field 2"


def test_single_column_csv_header_is_not_a_row() -> None:
    frame = parse_drop_list("domain\nalpha.com\n", "csv")
    assert frame["domain"].to_list() == ["alpha.com"]


def test_empty_list_gives_an_empty_frame_with_the_schema() -> None:
    frame = parse_drop_list("# nothing today\n\n", "s")
    assert frame.height == 0
    assert frame.schema == DROP_LIST_SCHEMA


def test_utf8_bom_is_dropped() -> None:
    frame = read_drop_list_bytes("\ufeffdomain,x\ncafé.fr,1\n".encode(), "s")
    assert frame["domain"].to_list() == ["xn--caf-dma.fr"]


def test_latin1_body_is_decoded() -> None:
    frame = read_drop_list_bytes("café.fr\n".encode("latin-1"), "s")
    assert frame["domain"].to_list() == ["xn--caf-dma.fr"]


def test_utf16_body_with_bom_is_decoded() -> None:
    frame = read_drop_list_bytes("one.com\r\ntwo.com\r\n".encode("utf-16"), "s")
    assert frame["domain"].to_list() == ["one.com", "two.com"]


def test_gzip_body_is_unpacked() -> None:
    frame = read_drop_list_bytes(gzip.compress(b"one.com\n"), "s")
    assert frame["domain"].to_list() == ["one.com"]


def test_html_page_is_a_single_error_row() -> None:
    body = b"\n<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>"
    frame = read_drop_list_bytes(body, "s")
    assert frame.height == 1
    assert frame.row(0, named=True) | {"raw": None} == {
        "raw": None,
        "domain": None,
        "tld": None,
        "source": "s",
        "line": 1,
        "error": NOT_A_LIST_HTML,
    }


def test_binary_body_is_a_single_error_row() -> None:
    frame = read_drop_list_bytes(b"PK\x03\x04\x00\x00binary", "s")
    assert frame["error"].to_list() == [NOT_A_LIST_BINARY]
    assert frame.schema == DROP_LIST_SCHEMA


def test_many_lines_parse_into_one_row_each() -> None:
    text = "\n".join(f"name{i}.com" for i in range(5_000))
    frame = parse_drop_list(text, "s")
    assert frame.height == 5_000
    assert frame.filter(pl.col("error").is_not_null()).height == 0

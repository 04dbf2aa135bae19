from __future__ import annotations

import pytest

from juggernaut_assets.lib.domains.normalize import NormalizedDomain, normalize_domain, sld


def test_whitespace_trailing_dot_and_case_are_normalised() -> None:
    assert normalize_domain("  Example.COM.\n") == NormalizedDomain(
        raw="  Example.COM.\n", domain="example.com", tld="com", error=None
    )


def test_idn_name_is_converted_to_punycode() -> None:
    result = normalize_domain("Bücher.de")
    assert (result.domain, result.tld, result.error) == ("xn--bcher-kva.de", "de", None)


def test_idn_with_ideographic_full_stop_is_mapped_by_uts46() -> None:
    assert normalize_domain("münchen。de").domain == "xn--mnchen-3ya.de"


def test_idn_tld_is_converted_too() -> None:
    assert normalize_domain("пример.рф").domain == "xn--e1afmkfd.xn--p1ai"
    assert normalize_domain("пример.рф").tld == "xn--p1ai"


def test_valid_punycode_label_is_accepted_as_is() -> None:
    assert normalize_domain("xn--bcher-kva.com").domain == "xn--bcher-kva.com"


def test_pasted_url_keeps_only_the_host() -> None:
    assert normalize_domain("https://user@Shop.Example.com:8443/a/b?q=1#x").domain == (
        "shop.example.com"
    )
    assert normalize_domain("example.org/path?x").domain == "example.org"


def test_leading_www_is_dropped_from_a_pasted_url() -> None:
    assert normalize_domain("http://www.example.net/").domain == "example.net"


def test_www_alone_before_the_tld_is_kept() -> None:
    assert normalize_domain("www.com").domain == "www.com"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("https://", "empty"),
        ("localhost", "single label"),
        ("a" * 64 + ".com", "64 characters long; the limit is 63"),
        (".".join(["a" * 60] * 5) + ".com", "308 characters long; the limit is 253"),
        ("-abc.com", "starts or ends with a hyphen"),
        ("abc-.com", "starts or ends with a hyphen"),
        ("ab--cd.com", "not an xn-- label"),
        ("xn--zz.com", "not valid punycode"),
        ("ex_ample.com", "invalid character '_'"),
        ("exa mple.com", "invalid character ' '"),
        ("a..com", "empty label"),
        ("example.123", "all digits"),
        ("192.168.0.1", "all digits"),
        ("☃.com", "not a valid internationalised label"),
    ],
)
def test_invalid_names_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    result = normalize_domain(raw)
    assert result.domain is None and result.tld is None
    assert result.error is not None and reason in result.error
    assert result.raw == raw
    assert not result.ok


def test_lone_surrogate_does_not_raise() -> None:
    result = normalize_domain("\ud800.com")
    assert result.domain is None and result.error


def test_253_character_name_is_accepted() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "com"])
    assert len(name) == 253
    assert normalize_domain(name).domain == name


def test_sld_is_the_label_before_the_tld() -> None:
    assert sld("example.com") == "example"
    assert sld("shop.example.com") == "example"


def test_sld_looks_past_common_two_label_suffixes() -> None:
    assert sld("example.co.uk") == "example"
    assert sld("shop.example.com.au") == "example"
    assert sld("co.uk") == "co"

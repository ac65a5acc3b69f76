"""A node's base_url has one spelling per destination: what parsers might read differently is
refused, naming `base_url`, and what passes comes back canonical."""

from __future__ import annotations

import random
import re

import httpx
import pytest

from agentfield_arq.core.nodes import read_base_url
from agentfield_arq.kernel.errors import InvalidBaseUrl, InvalidRequest, http_status
from agentfield_arq.kernel.urls import BASE_URL_PATTERN, MAX_BASE_URL_CHARS, parse_base_url


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("http://finance:8001", "http://finance:8001"),
        ("https://agents.example.com", "https://agents.example.com"),
        ("HTTP://Finance.Example.COM:8001/", "http://finance.example.com:8001"),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("http://10.0.0.12:80/agents/v1/", "http://10.0.0.12:80/agents/v1"),
        ("http://0.0.0.0:1", "http://0.0.0.0:1"),
        ("http://[::1]:8001", "http://[::1]:8001"),
        ("http://[2001:DB8:0:0::1]", "http://[2001:db8::1]"),
        ("http://my_service.internal:9000", "http://my_service.internal:9000"),
        ("http://xn--bcher-kva.example", "http://xn--bcher-kva.example"),
        ("http://host:65535/a%2Fb", "http://host:65535/a%2Fb"),
        ("http://host/~user/agent-1", "http://host/~user/agent-1"),
    ],
)
def test_a_plain_http_url_passes_in_its_canonical_spelling(url: str, canonical: str) -> None:
    assert parse_base_url(url) == canonical


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("", "empty"),
        ("finance:8001", "http:// or https://"),
        ("ftp://finance", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http:/finance", "http:// or https://"),
        ("http://", "must have a host"),
        ("http://:8001", "must have a host"),
        ("http://user:pw@finance", "credentials"),
        ("http://user@finance", "credentials"),
        ("http://finance@evil.example", "credentials"),
        ("http://finance?x=1", "query or fragment"),
        ("http://finance#top", "query or fragment"),
        ("http://finance/?", "query or fragment"),
        ("http://finance:0", "port"),
        ("http://finance:65536", "port"),
        ("http://finance:08001", "port"),
        ("http://finance:80a", "port"),
        ("http://finance:", "port"),
        ("http://[::1]x", "port"),
        ("http://[::1", "closed"),
        ("http://[::g]", "not an IPv6"),
        ("http://[fe80::1%25eth0]", "zone id"),
        ("http://fin%61nce", "'%' escapes"),
        ("http://-finance", "not a host name"),
        ("http://fin..ance", "not a host name"),
        ("http://finance.", "not a host name"),
        ("http://fin$ance", "not a host name"),
        ("http://" + "a" * 64 + ".example", "not a host name"),
        ("http://" + "a." * 127 + "example", "at most 253"),
        ("http://finance/a b", "whitespace"),
        ("http://fin ance", "whitespace"),
        (" http://finance", "whitespace"),
        ("http://finance\t", "whitespace"),
        ("http://finance/\r\nX-Injected: 1", "whitespace"),
        ("http://finance/\x00", "control characters"),
        ("http://finance/\x7f", "control characters"),
        ("http://fïnance", "ASCII"),
        ("http://finance/%0d%0aX-Injected:%201", "escape control characters"),
        ("http://finance/%0A", "escape control characters"),
        ("http://finance/%00", "escape control characters"),
        ("http://finance/%7f", "escape control characters"),
        ("http://finance/a%20b", "escape control characters"),
        ("http://finance/a\\b", "'\\'"),
        ("http://finance/a|b", "must be escaped"),
        ("http://finance/a%zz", "must be escaped"),
        ("http://finance/../admin", "'..'"),
        ("http://finance/a/./b", "'.'"),
        ("http://finance/%2e%2e/admin", "'..'"),
        ("http://finance//admin", "empty segments"),
        ("http://finance/" + "a" * MAX_BASE_URL_CHARS, f"at most {MAX_BASE_URL_CHARS}"),
    ],
)
def test_an_unusable_url_is_refused_naming_base_url_and_the_rule(url: str, rule: str) -> None:
    with pytest.raises(InvalidBaseUrl) as caught:
        parse_base_url(url)
    assert str(caught.value).startswith("base_url: ")
    assert rule in str(caught.value)


@pytest.mark.parametrize(
    "host",
    [
        "0177.0.0.1",  # octal: 127.0.0.1 to inet_aton and browsers
        "0x7f.0.0.1",  # hex
        "0x7f000001",
        "127.1",  # short forms
        "127.0.1",
        "10.1",
        "2130706433",  # one integer
        "127.000.000.001",  # leading zeros
        "127.0.0.01",
        "00.0.0.0",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.999",
        "example.123",  # a numeric last label makes it an IPv4 address to URL parsers
        "example.0x1",
        "0x",
    ],
)
def test_an_ambiguous_ipv4_spelling_is_refused(host: str) -> None:
    with pytest.raises(InvalidBaseUrl, match=r"^base_url: .*(IPv4|over 255)"):
        parse_base_url(f"http://{host}:8001")


def test_a_refused_base_url_is_a_400_invalid_request_with_its_own_code() -> None:
    assert issubclass(InvalidBaseUrl, InvalidRequest)
    assert (InvalidBaseUrl.code, http_status(InvalidBaseUrl)) == ("invalid_base_url", 400)


def test_the_canonical_spelling_parses_to_itself() -> None:
    for url in ("HTTPS://A.Example:443/X/", "http://[0:0::1]", "http://host/p%2fq"):
        canonical = parse_base_url(url)
        assert parse_base_url(canonical) == canonical


@pytest.mark.parametrize(
    "host",
    [
        "xn--zz",  # not punycode
        "xn--a",  # U+0080
        "xn--ls8h",  # a symbol, not a letter
        "xn--bcher-kva0y",  # an upper-case letter once decoded
        "xn--bcher-kva.my_service",  # '_' is no IDNA character
    ],
)
def test_an_internationalised_host_name_must_be_valid_idna(host: str) -> None:
    with pytest.raises(InvalidBaseUrl, match="internationalised host name"):
        parse_base_url(f"http://{host}:8001")


def _candidates(count: int) -> list[str]:
    """URLs built from the pieces that parsers disagree on, from a fixed seed."""
    rng = random.Random(9)
    hosts = ["finance", "127.0.0.1", "[::1]", "[::ffff:1.2.3.4]", "xn--bcher-kva", "a_b", "0.0.0.0"]
    hosts += ["xn--", "xn--a", "xn--80ak6aa92e", "1.2.3.4", "[2001:db8::1]", "a-b.c", "_a"]
    tails = ["", "x", "_", ".b", ".xn--c", "-", ".1", "0"]
    alphabet = "abXZ09-_.:/[]%@?#~!$&'()*+,;=\\ \t"
    urls = []
    for _ in range(count):
        host = rng.choice(hosts) + rng.choice(tails)
        port = rng.choice(["", ":1", ":80", f":{rng.randint(0, 99999)}"])
        path = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        urls.append(
            f"{rng.choice(['http://', 'https://'])}{host}{port}{rng.choice(['', '/'])}{path}"
        )
    return urls


def test_every_base_url_registration_accepts_is_one_the_workers_http_client_can_call() -> None:
    accepted = 0
    for url in _candidates(8_000):
        try:
            grammar = parse_base_url(url)
        except InvalidBaseUrl:
            continue
        # The grammar alone refuses these; the HTTP client's own check is for rarer names.
        assert read_base_url(url) == grammar, url
        accepted += 1
        request = httpx.Request("POST", f"{grammar}/reasoners/deep_analysis")
        assert request.url.host, url
        assert parse_base_url(grammar) == grammar
    assert accepted > 400  # the candidates are not all refused


def _documented(count: int) -> list[str]:
    """URLs of the document's shape (BASE_URL_PATTERN), drawn with a fixed seed."""
    rng = random.Random(11)
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

    def word(first: str = chars) -> str:
        return rng.choice(first) + "".join(rng.choices(chars, k=rng.randint(0, 19)))

    def label(first: str = chars) -> str:
        return "-".join([word(first), *(word() for _ in range(rng.randint(0, 2)))])

    urls = []
    for _ in range(count):
        if rng.random() < 0.3:
            host = ".".join(
                str(rng.choice([0, 9, 10, 99, 100, 199, 200, 249, 250, 255])) for _ in "1234"
            )
        else:
            host = ".".join([*(label() for _ in range(rng.randint(0, 3))), label(chars[:52])])
        port = rng.choice(["", ":1", ":80", ":8001", ":65535", f":{rng.randint(1, 65535)}"])
        path = "".join(
            "/" + "".join(rng.choices(chars + "_~-", k=rng.randint(1, 32)))
            for _ in range(rng.randint(0, 4))
        )
        urls.append(f"{rng.choice(['http', 'https'])}://{host}{port}{path}{rng.choice(['', '/'])}")
    return urls


def test_every_url_of_the_documented_pattern_is_accepted() -> None:
    urls = _documented(2000)
    assert all(re.fullmatch(BASE_URL_PATTERN, url) for url in urls)
    for url in urls:
        read_base_url(url)  # raises if the grammar or the workers' client refuses it


@pytest.mark.parametrize(
    "url",
    ["http://0177.0.0.1", "http://127.1", "http://a:1/x%0d%0a", "http://a:0", "http://a:65536",
     "http://u:p@a", "http://a/?q", "ftp://a", "http://a/./b", "http://a\x00b"],
)  # fmt: skip
def test_what_the_grammar_refuses_is_off_the_documented_pattern(url: str) -> None:
    assert re.fullmatch(BASE_URL_PATTERN, url) is None
    with pytest.raises(InvalidRequest):
        read_base_url(url)

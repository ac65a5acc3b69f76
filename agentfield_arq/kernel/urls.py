"""The grammar of a node's `base_url`: one spelling per destination, or a refusal.

Workers append `/reasoners/{name}` to a node's base URL and connect where it points, so the URL
is read strictly when a node registers, before anything is stored. Everything that parsers
disagree on is refused rather than interpreted: an IPv4 address is four decimal numbers without
leading zeros (browsers and `inet_aton` read `0177.0.0.1`, `0x7f.1`, `127.1` and `2130706433`
as 127.0.0.1; other parsers read them as host names or reject them), and a URL holds no
credentials, query, fragment, whitespace, control characters or escapes of them (`%0d%0a`),
which have crashed HTTP clients and split requests.
"""

from __future__ import annotations

import ipaddress
import re

from agentfield_arq.kernel.errors import InvalidBaseUrl

# The `pattern` of `base_url` in the OpenAPI document: a plain subset of the grammar below
# (every URL it matches is accepted; tests/unit/test_urls.py draws from it), so that a client
# that follows the document is never refused. The grammar also accepts IPv6 literals, '_' in
# labels, internationalised (xn--) names, dots and escapes in the path.
_DOC_LABEL = r"[A-Za-z0-9]{1,20}(?:-[A-Za-z0-9]{1,20}){0,2}"
_DOC_TOP = r"[A-Za-z][A-Za-z0-9]{0,19}(?:-[A-Za-z0-9]{1,20}){0,2}"
_DOC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_DOC_PORT = (
    r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
)
BASE_URL_PATTERN = (
    rf"^https?://(?:{_DOC_OCTET}(?:\.{_DOC_OCTET}){{3}}|(?:{_DOC_LABEL}\.){{0,3}}{_DOC_TOP})"
    rf"(?::{_DOC_PORT})?(?:/[A-Za-z0-9_~-]{{1,32}}){{0,4}}/?$"
)
MAX_BASE_URL_CHARS = 2048
MAX_HOST_CHARS = 253
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# A last label that is a number (decimal, or 0x hex) makes the host an IPv4 address to WHATWG
# URL parsers, whatever the other labels are.
_NUMERIC = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_DECIMAL_OCTET = re.compile(r"0|[1-9][0-9]{0,2}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
# RFC 3986 path characters: unreserved, sub-delims, ':', '@', '/', and '%' escapes.
_PATH = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*")
# Escapes that decode to a control character, a space or DEL.
_BAD_ESCAPE = re.compile(r"%(?:[01][0-9A-Fa-f]|20|7[Ff])")
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2[Ee]){1,2}(?:/|$)")


def parse_base_url(url: str) -> str:
    """`url` in its one canonical spelling (scheme and host lower-cased, no trailing `/`);
    raises InvalidBaseUrl, whose message names `base_url` and the rule broken."""
    if not url:
        raise InvalidBaseUrl("base_url: must not be empty")
    if len(url) > MAX_BASE_URL_CHARS:
        raise InvalidBaseUrl(f"base_url: must be at most {MAX_BASE_URL_CHARS} characters")
    if not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        raise InvalidBaseUrl(
            "base_url: must be printable ASCII without whitespace or control characters "
            "(a non-ASCII host in its xn-- form)"
        )
    if "?" in url or "#" in url:
        raise InvalidBaseUrl("base_url: must not have a query or fragment")
    if "\\" in url:
        raise InvalidBaseUrl("base_url: must not contain '\\'")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise InvalidBaseUrl("base_url: must start with http:// or https://")
    authority, slash, path = rest.partition("/")
    host, port = _authority(authority)
    return f"{scheme}://{host}{port}{_path(slash + path)}"


def _authority(authority: str) -> tuple[str, str]:
    """The host (canonical) and ':port' (or '') of the authority."""
    if "@" in authority:
        raise InvalidBaseUrl("base_url: must not embed credentials")
    if "%" in authority:
        raise InvalidBaseUrl("base_url: the host must not contain '%' escapes or a zone id")
    if authority.startswith("["):
        literal, bracket, after = authority[1:].partition("]")
        if not bracket:
            raise InvalidBaseUrl("base_url: an IPv6 address must be closed by ']'")
        host = f"[{_ipv6(literal)}]"
    else:
        literal = authority.partition(":")[0]
        after = authority[len(literal) :]
        host = _hostname(literal)
    if not after:
        return host, ""
    if not after.startswith(":") or not _PORT.fullmatch(after[1:]) or int(after[1:]) > 65535:
        raise InvalidBaseUrl("base_url: the port must be a number from 1 to 65535")
    return host, after


def _ipv6(literal: str) -> str:
    try:
        address = ipaddress.IPv6Address(literal)
    except ValueError as exc:
        raise InvalidBaseUrl(f"base_url: '[{literal[:64]}]' is not an IPv6 address") from exc
    return address.compressed


def _hostname(host: str) -> str:
    host = host.lower()
    if not host:
        raise InvalidBaseUrl("base_url: must have a host")
    if len(host) > MAX_HOST_CHARS:
        raise InvalidBaseUrl(f"base_url: the host must be at most {MAX_HOST_CHARS} characters")
    labels = host.split(".")
    if _NUMERIC.fullmatch(labels[-1]):
        if len(labels) != 4 or not all(_DECIMAL_OCTET.fullmatch(p) for p in labels):
            raise InvalidBaseUrl(
                f"base_url: '{host[:64]}' is not an IPv4 address in dotted decimal "
                "(four numbers 0-255 without leading zeros)"
            )
        if any(int(p) > 255 for p in labels):
            raise InvalidBaseUrl(f"base_url: '{host[:64]}' has a number over 255")
        return host
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidBaseUrl(
            f"base_url: '{host[:64]}' is not a host name (dot-separated labels of letters, "
            "digits, '-' and '_', 1-63 characters each)"
        )
    if any(label.startswith("xn--") for label in labels):
        _check_idna(host, labels)
    return host


def _check_idna(host: str, labels: list[str]) -> None:
    """An internationalised name (an `xn--` label) is held to IDNA's letters-digits-hyphen
    rule: HTTP clients decode such a name, and one that does not decode breaks them."""
    for label in labels:
        try:
            decoded = label[4:].encode().decode("punycode") if label.startswith("xn--") else label
        except UnicodeError:
            decoded = "_"
        letters = all(c.isalnum() or c == "-" for c in decoded)
        if "_" in decoded or not letters or decoded != decoded.lower():
            raise InvalidBaseUrl(
                f"base_url: '{host[:64]}' is not a valid internationalised host name "
                "(each label lower-case letters, digits and '-'; each xn-- label valid punycode)"
            )


def _path(path: str) -> str:
    if not _PATH.fullmatch(path):
        raise InvalidBaseUrl("base_url: the path holds a character that must be escaped")
    if _BAD_ESCAPE.search(path):
        raise InvalidBaseUrl("base_url: the path must not escape control characters or spaces")
    if _DOT_SEGMENT.search(path) or "//" in path:
        raise InvalidBaseUrl("base_url: the path must not have '.', '..' or empty segments")
    return path.rstrip("/")

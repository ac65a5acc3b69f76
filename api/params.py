"""Query parameters parsed strictly: ASCII digits only (`"²".isdigit()` is true, `int("²")`
raises), bounds checked, and every refusal a 400 naming the parameter; and a request's headers
by name, decoded once."""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection, Request

from agentfield_arq.kernel.errors import InvalidRequest

_WHOLE = re.compile(r"[0-9]{1,18}")
_HEADERS = "agentfield_arq.headers"  # where `headers` keeps its dict, in the request's scope


def int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """The whole number `name` from the query string, `default` when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _WHOLE.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise InvalidRequest(f"query parameter {name}: a whole number from {minimum} to {maximum}")
    return int(raw)


def text_param(request: Request, name: str, *, max_length: int) -> str | None:
    """The string `name` from the query string, at most `max_length` characters."""
    raw = request.query_params.get(name)
    if raw is not None and len(raw) > max_length:
        raise InvalidRequest(f"query parameter {name}: at most {max_length} characters")
    return raw


def headers(connection: HTTPConnection) -> dict[str, str]:
    """The request's headers by (lower-case) name, the first of a repeated one as Starlette's
    `Headers.get` answers, decoded once per request: an enqueue reads about ten, and each
    `Headers.get` scans and decodes the whole list again."""
    found: dict[str, str] | None = connection.scope.get(_HEADERS)
    if found is None:
        found = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(connection.scope["headers"])
        }
        connection.scope[_HEADERS] = found
    return found

"""Query parameters parsed strictly: ASCII digits only (`"²".isdigit()` is true, `int("²")`
raises), bounds checked, and every refusal a 400 naming the parameter."""

from __future__ import annotations

import re

from starlette.requests import Request

from agentfield_arq.kernel.errors import InvalidRequest

_WHOLE = re.compile(r"[0-9]{1,18}")


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

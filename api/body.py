"""Reading request bodies with a size cap (`read_body`, from the kernel) and decoding them into
typed Structs, refusing JSON nested deeper than the configured limit before any decoder
recurses into it."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from starlette.requests import Request

from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.body import json_depth_over, read_body
from agentfield_arq.kernel.errors import InvalidRequest, JsonTooDeep

__all__ = ["decode", "read_body", "read_json"]

T = TypeVar("T")


def decode(body: bytes, kind: type[T], depth: int, *, optional: bool = False) -> T:
    """Decode JSON into `kind`; the error names the field (`$.input`) and what is wrong, or
    the depth limit when arrays and objects nest more than `depth` deep."""
    if optional and not body.strip():
        body = b"{}"
    if json_depth_over(body, depth):
        raise JsonTooDeep(f"body: JSON nested more than {depth} levels deep (max_json_depth)")
    try:
        value: T = msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    return value


async def read_json(
    request: Request,
    kind: type[T],
    settings: Settings,
    *,
    cap: int | None = None,
    optional: bool = False,
) -> T:
    """Read and decode a JSON body within the settings' size cap (or `cap`) and depth limit."""
    body = await read_body(request, settings.max_body_bytes if cap is None else cap)
    return decode(body, kind, settings.max_json_depth, optional=optional)

"""Reading request bodies with a size cap (`read_body`, from the core) and decoding them into
typed Structs."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from starlette.requests import Request

from agentfield_arq.kernel.body import read_body
from agentfield_arq.kernel.errors import InvalidRequest

__all__ = ["decode", "read_body", "read_json"]

T = TypeVar("T")


def decode(body: bytes, kind: type[T], *, optional: bool = False) -> T:
    """Decode JSON into `kind`; the error names the field (`$.input`) and what is wrong."""
    if optional and not body.strip():
        body = b"{}"
    try:
        value: T = msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    return value


async def read_json(request: Request, kind: type[T], cap: int, *, optional: bool = False) -> T:
    """Read and decode a capped JSON body."""
    return decode(await read_body(request, cap), kind, optional=optional)

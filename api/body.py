"""Reading request bodies with a size cap and decoding them into typed Structs."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from starlette.requests import Request

from agentfield_arq.errors import InvalidRequest, PayloadTooLarge

T = TypeVar("T")


async def read_body(request: Request, cap: int) -> bytes:
    """The raw body, refusing (413) anything over `cap` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"request body is larger than {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"request body is larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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

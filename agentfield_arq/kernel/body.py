"""Reading an HTTP request body without trusting its size: the API, the agent SDK's endpoint
and the webhook receiver all read through `read_body`, so that no peer can make them buffer
more than their cap."""

from __future__ import annotations

import re
from itertools import accumulate

from starlette.requests import Request

from agentfield_arq.kernel.errors import PayloadTooLarge


async def read_body(request: Request, cap: int) -> bytes:
    """The raw body, refusing (PayloadTooLarge) anything over `cap` bytes: at once when the
    declared Content-Length says so, else as soon as the chunks received pass it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"request body is larger than {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"request body is larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# A JSON string (escapes included), and the bytes that are not brackets.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
# Openers become +1 and closers -1 once read as signed bytes.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth_over(body: bytes, limit: int) -> bool:
    """True when the JSON document `body` nests arrays and objects more than `limit` deep.

    Decoders recurse once per level (msgspec into `Any` raises RecursionError near Python's
    recursion limit), so the depth is measured before decoding, without recursion: strings are
    dropped, the brackets left are summed as +1/-1 in C (`accumulate` over signed bytes).
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS).translate(_STEPS)
    return max(accumulate(memoryview(brackets).cast("b")), default=0) > limit

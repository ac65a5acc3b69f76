"""Reading an HTTP request body without trusting its size: the API, the agent SDK's endpoint
and the webhook receiver all read through `read_body`, so that no peer can make them buffer
more than their cap."""

from __future__ import annotations

from starlette.requests import Request

from agentfield_arq.kernel.errors import PayloadTooLarge


async def read_body(request: Request, cap: int) -> bytes:
    """The raw body, refusing (PayloadTooLarge) anything over `cap` bytes: at once when the
    declared Content-Length says so, else as soon as the chunks received pass it."""
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

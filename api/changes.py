"""Memory change events, as AgentField's SDK subscribes to them: a WebSocket
(`/memory/events/ws`, which `@app.on_change` listens on), its Server-Sent Events form
(`/memory/events/sse`) and the history (`/memory/events/history`)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket

from agentfield_arq.api.deps import deps
from agentfield_arq.api.owners import Visibility, authenticate_socket
from agentfield_arq.core.changes import Change, Filter, history
from agentfield_arq.kernel.errors import ApiError, InvalidRequest, Unavailable

KEEPALIVE_S = 15.0
POLICY_VIOLATION = 1008  # the WebSocket close code for a key that may not follow changes
TRY_AGAIN_LATER = 1013  # the WebSocket close code for a server that cannot serve now
HISTORY_DEFAULT = 100
HISTORY_MAX = 1000


def _filter(params: Mapping[str, str]) -> Filter:
    patterns = tuple(p.strip() for p in params.get("patterns", "").split(",") if p.strip())
    return Filter(
        scope=params.get("scope") or None,
        scope_id=params.get("scope_id") or None,
        patterns=patterns,
    )


async def _wanted(seen: Visibility, wanted: Filter, item: Change) -> bool:
    return wanted.matches(item.event) and await seen.allows(item)


async def socket(websocket: WebSocket) -> None:
    """Send each matching change as one JSON text message until the client goes away."""
    wanted = _filter(websocket.query_params)
    try:
        await authenticate_socket(websocket)
    except ApiError:
        await websocket.close(code=POLICY_VIOLATION)
        return
    changes = deps(websocket).changes
    try:
        await changes.ready()
    except Unavailable:
        await websocket.close(code=TRY_AGAIN_LATER)
        return
    await websocket.accept()
    seen = Visibility(websocket)
    async with changes.subscribe() as queue:
        gone = asyncio.create_task(_closed(websocket))
        try:
            while not gone.done():
                item = asyncio.create_task(queue.get())
                await asyncio.wait({item, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not item.done():
                    item.cancel()
                    break
                if await _wanted(seen, wanted, item.result()):
                    await websocket.send_text(item.result().encoded.decode())
        finally:
            gone.cancel()


async def _closed(websocket: WebSocket) -> None:
    """Returns when the client closes (what it sends is not read)."""
    with contextlib.suppress(Exception):
        async for _ in websocket.iter_text():
            pass


async def events(request: Request) -> Response:
    """The same changes as Server-Sent Events (`event: message`), after a `: subscribed`
    comment (changes made from then on are sent) and with a keep-alive comment every 15 s;
    `max_s` ends the stream after that many seconds."""
    wanted = _filter(request.query_params)
    max_s = _seconds(request.query_params.get("max_s"))
    changes = deps(request).changes
    seen = Visibility(request)
    await changes.ready()  # 503 now rather than a stream that never starts

    async def stream() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        ends = loop.time() + max_s
        async with changes.subscribe() as queue:
            yield b": subscribed\n\n"
            while (left := ends - loop.time()) > 0:
                try:
                    item = await asyncio.wait_for(queue.get(), min(left, KEEPALIVE_S))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if await _wanted(seen, wanted, item):
                    yield b"event: message\ndata: " + item.encoded + b"\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _seconds(value: str | None) -> float:
    if value is None:
        return math.inf
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < math.inf:
        raise InvalidRequest("max_s: a number of seconds above 0")
    return seconds


async def past(request: Request) -> Response:
    """Recent changes, oldest first: `limit` (100; at most 1,000) of those that match, made
    since `since` (RFC 3339) when it is a time."""
    params = request.query_params
    limit = params.get("limit", str(HISTORY_DEFAULT))
    if not limit.isdigit() or not 1 <= int(limit) <= HISTORY_MAX:
        raise InvalidRequest(f"limit: a whole number from 1 to {HISTORY_MAX}")
    since_ms = None
    # As the Go server does, a `since` that is not a time is ignored.
    with contextlib.suppress(ValueError, OverflowError):
        since_ms = max(0, int(datetime.fromisoformat(params.get("since", "")).timestamp() * 1000))
    d = deps(request)
    found = await history(d.redis, d.store.keys, _filter(params), since_ms, int(limit))
    seen = Visibility(request)
    body = b"[" + b",".join([c.encoded for c in found if await seen.allows(c)]) + b"]"
    return Response(body, media_type="application/json")

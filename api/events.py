"""Server-sent events of the lifecycle stream: one execution's, or all that pass a filter.

Each event's `id:` is its stream id, so that a client reconnecting with `Last-Event-ID` misses
nothing; a comment line every `AGENTFIELD_ARQ_SSE_HEARTBEAT_S` keeps proxies from closing a
quiet connection; a client that reads too slowly is sent a last `cutoff` event and closed (the
server never waits for it: see core/broadcast.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import StreamingResponse

from agentfield_arq.api.access import identity
from agentfield_arq.api.deps import Deps, deps
from agentfield_arq.api.listing import filters_of
from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.feed import STREAM_ID, Event, EventFilter, Feed, frame
from agentfield_arq.core.rerun import missing
from agentfield_arq.kernel.errors import InvalidRequest
from agentfield_arq.kernel.status import TERMINAL_STATUSES

MEDIA_TYPE = "text/event-stream"
HEARTBEAT = b": heartbeat\n\n"
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class _Status(msgspec.Struct):
    status: str


_status = msgspec.json.Decoder(_Status)


def _resume_point(request: Request) -> str | None:
    raw = request.headers.get("last-event-id")
    if raw is None or raw == "":
        return None
    if not STREAM_ID.fullmatch(raw):
        raise InvalidRequest("header Last-Event-ID: the id of an event (`1732624639869-0`)")
    return raw


async def _framed(
    d: Deps,
    f: EventFilter,
    after: str | None,
    owner: Identity = ANONYMOUS_ADMIN,
) -> AsyncIterator[bytes]:
    """The events as bytes. For one execution (`f.execution_id`), the stream ends after its
    terminal event and, without a resumption point, starts with its state as a `state` event
    (no id), read once subscribed so that nothing falls between the two (as `owner` may see
    it: read through the ownership-checked script)."""
    feed = Feed(d.redis, d.broadcast, d.store.keys.events, d.settings.sse_buffer)
    subscribed = False
    async for chunk in feed.events(f, after, d.settings.sse_heartbeat_s):
        if chunk is not None:
            yield chunk
            continue
        yield HEARTBEAT
        if not subscribed and f.execution_id is not None and after is None:
            view = await d.store.get_view(f.execution_id, owner)
            if view is None:
                return
            yield frame(Event(id=None, name="state", data=view))
            if _status.decode(view).status in TERMINAL_STATUSES:
                return
        subscribed = True


async def execution_events(request: Request) -> StreamingResponse:
    """One execution's lifecycle events; ends after its terminal event. Another key's
    execution is not found, as in every read."""
    d = deps(request)
    execution_id = request.path_params["execution_id"]
    after = _resume_point(request)
    owner = identity(request)
    if await d.store.get_view(execution_id, owner) is None:
        raise missing(d.store, execution_id)
    body = _framed(d, EventFilter(execution_id=execution_id), after, owner)
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=_HEADERS)


async def all_events(request: Request) -> StreamingResponse:
    """Lifecycle events of every execution passing `target`, `status` and `run_id`: of every
    key's for an admin's key, else of the executions the key submitted."""
    d = deps(request)
    listed = filters_of(request.query_params)
    viewer = identity(request)
    f = EventFilter(
        target=listed.target,
        status=listed.status,
        run_id=listed.run_id,
        owner=None if viewer.is_admin else viewer.key_id,
    )
    after = _resume_point(request)
    body = _framed(d, f, after)
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=_HEADERS)

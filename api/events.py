"""Server-sent events of the lifecycle stream: one execution's, or all that pass a filter.

Each event's `id:` is its stream id (with several Redis, the position in each of their streams:
core/streams.py), so that a client reconnecting with `Last-Event-ID` misses nothing; a comment
line every `AGENTFIELD_ARQ_SSE_HEARTBEAT_S` keeps proxies from closing a quiet connection; a
client that reads too slowly is sent a last `cutoff` event and closed (the server never waits
for it: see core/broadcast.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import StreamingResponse

from agentfield_arq.api.access import identity
from agentfield_arq.api.deps import Deps, Shard, deps
from agentfield_arq.api.listing import filters_of
from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.feed import STREAM_ID, Event, EventFilter, Feed, frame
from agentfield_arq.core.rerun import missing
from agentfield_arq.core.routing import HOME
from agentfield_arq.core.streams import merged, positions
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
    shard: Shard | None = None,
) -> AsyncIterator[bytes]:
    """The events as bytes. For one execution (`f.execution_id`), the stream ends after its
    terminal event and, without a resumption point, starts with its state as a `state` event
    (no id), read once subscribed so that nothing falls between the two (as `owner` may see
    it: read through the ownership-checked script). The events are those of `shard`'s Redis
    (home by default)."""
    shard = shard or d.shards.home
    feed = Feed(shard.redis, shard.broadcast, shard.store.keys.events, d.settings.sse_buffer)
    subscribed = False
    async for chunk in feed.events(f, after, d.settings.sse_heartbeat_s):
        if chunk is not None:
            yield chunk
            continue
        yield HEARTBEAT
        if not subscribed and f.execution_id is not None and after is None:
            view = await shard.store.get_view(f.execution_id, owner)
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
    shard = await d.shards.holding(execution_id)
    if await shard.store.get_view(execution_id, owner) is None:
        raise missing(shard.store, execution_id)
    body = _framed(d, EventFilter(execution_id=execution_id), after, owner, shard)
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
    if d.shards.routes.routed:
        body = _merged(d, f, _positions(request, d))
    else:
        body = _framed(d, f, _resume_point(request))
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=_HEADERS)


def _positions(request: Request, d: Deps) -> dict[str, str]:
    """Where each Redis's stream resumes: a composite id (core/streams.py), or a plain stream
    id (home's, from before the routes)."""
    raw = request.headers.get("last-event-id")
    if raw is None or raw == "":
        return {}
    if STREAM_ID.fullmatch(raw):
        return {HOME: raw}
    found = positions(raw, frozenset(d.shards.by_code))
    if found is None:
        raise InvalidRequest(
            "header Last-Event-ID: the id of an event (`0:1732624639869-0,1:1732624639870-2`)"
        )
    return found


async def _merged(d: Deps, f: EventFilter, after: dict[str, str]) -> AsyncIterator[bytes]:
    """The events of every Redis of the routes, as bytes, with composite ids."""
    feeds = {
        s.code: Feed(s.redis, s.broadcast, s.store.keys.events, d.settings.sse_buffer)
        for s in d.shards
    }
    async for event in merged(feeds, f, after, d.settings.sse_heartbeat_s):
        yield HEARTBEAT if event is None else frame(event)

"""The lifecycle events of several Redis (core/routing.py) as one subscriber's feed: each
Redis's `Feed` read at once, their events interleaved as they come.

Each event's id is the position reached in every stream, `{code}:{stream id}` joined by
commas (`0:1764592639869-0,1:1764592639870-2`), so that a subscriber that reconnects with
`Last-Event-ID` resumes every stream where it was and misses nothing. A stream the id does not
name is followed from its tail as it is when the subscription starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping

import msgspec

from agentfield_arq.core.feed import Chunk, Event, EventFilter, Feed, entry_event
from agentfield_arq.kernel.codec import text

_POSITION = re.compile(r"([0-9a-z]):([0-9]{1,20}-[0-9]{1,20})")


class _Cutoff(msgspec.Struct):
    last_event_id: str


def positions(value: str, codes: frozenset[str]) -> dict[str, str] | None:
    """Each stream's id in a composite event id; None if it is not one (or names a Redis not
    in `codes`)."""
    found: dict[str, str] = {}
    for part in value.split(","):
        match = _POSITION.fullmatch(part)
        if match is None or match[1] not in codes or match[1] in found:
            return None
        found[match[1]] = match[2]
    return found


def composite(reached: Mapping[str, str]) -> str:
    """The event id naming every stream's position."""
    return ",".join(f"{code}:{reached[code]}" for code in sorted(reached))


async def merged(
    feeds: Mapping[str, Feed], f: EventFilter, after: Mapping[str, str], heartbeat_s: float
) -> AsyncIterator[Event | None]:
    """The events of every feed passing `f` after the positions `after`, with composite ids;
    None (a heartbeat) once every feed is subscribed, then as the first feed's heartbeats
    come; a `cutoff` ends it all (naming the composite id to resume from), as from one feed."""
    reached = {code: after.get(code) or await _tail(feed) for code, feed in feeds.items()}
    # Bounded: a subscriber that reads slowly fills the feeds' own buffers, and is cut off.
    queue: asyncio.Queue[tuple[str, Chunk | Event | Exception | None]] = asyncio.Queue(len(feeds))

    async def pump(code: str, feed: Feed) -> None:
        try:
            async for piece in feed.pieces(f, reached[code], heartbeat_s):
                await queue.put((code, piece))
        except Exception as exc:  # a Redis error: the subscriber's stream ends with it
            await queue.put((code, exc))

    pumps = [asyncio.create_task(pump(code, feed)) for code, feed in feeds.items()]
    first = next(iter(feeds))
    subscribed: set[str] = set()
    try:
        while True:
            code, event = await queue.get()
            if isinstance(event, Exception):
                raise event
            if event is None:
                if len(subscribed) < len(feeds):
                    subscribed.add(code)
                    if len(subscribed) == len(feeds):
                        yield None
                elif code == first:
                    yield None
                continue
            if isinstance(event, Chunk):
                for one in event.frames:
                    reached[code] = f"{one.id[0]}-{one.id[1]}"
                    entry = entry_event((reached[code].encode(), one.fields))
                    yield Event(id=composite(reached), name=entry.name, data=entry.data)
                continue
            if event.name == "cutoff":
                reached[code] = msgspec.json.decode(event.data, type=_Cutoff).last_event_id
                yield _cutoff(event, composite(reached))
                return
            yield event
    finally:
        for task in pumps:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _tail(feed: Feed) -> str:
    newest = await feed.redis.xrevrange(feed.stream, count=1)
    return text(newest[0][0]) if newest else "0-0"


def _cutoff(event: Event, resume: str) -> Event:
    data = msgspec.json.decode(event.data)
    data["error"] = (
        "this client read too slowly and its buffer filled; reconnect with "
        f"Last-Event-ID: {resume} to carry on without missing anything"
    )
    data["last_event_id"] = resume
    return Event(id=None, name="cutoff", data=msgspec.json.encode(data))

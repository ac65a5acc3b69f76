"""Lifecycle events for subscribers: the entries of the lifecycle stream that pass a filter,
first those after a resumption point (read back from the stream), then live ones (through the
process's one fan-out, core/broadcast.py), in stream order, each once, framed for SSE.

An entry's id is its stream id (`1732624639869-0`): a subscriber that reconnects with the last
id it saw misses nothing the stream still holds. The stream is capped
(`AGENTFIELD_ARQ_STREAM_MAXLEN`); a resumption point older than its oldest entry is reported
as a gap, so that the subscriber knows to re-read the executions it follows.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from agentfield_arq.core.completions import Entry
from agentfield_arq.kernel.codec import text
from agentfield_arq.kernel.status import TERMINAL_STATUSES

if TYPE_CHECKING:
    from agentfield_arq.core.broadcast import Broadcast

BACKLOG_COUNT = 500
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
# Fields of a stream entry that a subscriber sees (`job` is the workers' business).
_SHOWN = ("execution_id", "status", "target", "run_id")
_TERMINAL = frozenset(s.encode() for s in TERMINAL_STATUSES)


def stream_id(value: bytes | str) -> tuple[int, int]:
    """A stream id as a pair that orders as Redis orders ids."""
    ms, _, seq = text(value).partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which entries a subscriber wants; None means any. `owner`: only the executions that
    key id submitted (each entry names its execution's submitting key, lua/common.lua)."""

    execution_id: str | None = None
    target: str | None = None
    status: str | None = None
    run_id: str | None = None
    owner: str | None = None

    def admit(self, fields: dict[bytes, bytes]) -> bool:
        """Whether an entry passes every condition."""
        for name, wanted in (
            ("execution_id", self.execution_id),
            ("target", self.target),
            ("status", self.status),
            ("run_id", self.run_id),
            ("owner", self.owner),
        ):
            if wanted is not None and fields.get(name.encode(), b"").decode() != wanted:
                return False
        return True


class Event(msgspec.Struct, kw_only=True):
    """One event as sent: its stream id, its name (the status word, or `gap`, `state`,
    `cutoff`), and its JSON data."""

    id: str | None
    name: str
    data: bytes


def frame(event: Event) -> bytes:
    """One event in the text/event-stream format."""
    head = b"" if event.id is None else b"id: " + event.id.encode() + b"\n"
    return head + b"event: " + event.name.encode() + b"\ndata: " + event.data + b"\n\n"


def entry_event(entry: Entry) -> Event:
    """A lifecycle entry as an event named by its status (`progress` for a progress report,
    whose data adds the report's `progress`, any JSON, and `message`)."""
    entry_id, fields = entry
    shown: dict[str, object] = {n: fields.get(n.encode(), b"").decode() for n in _SHOWN}
    if fields.get(b"progress"):
        shown["progress"] = msgspec.Raw(fields[b"progress"])
    if fields.get(b"message"):
        shown["message"] = fields[b"message"].decode()
    return Event(id=text(entry_id), name=str(shown["status"]), data=msgspec.json.encode(shown))


@dataclass(frozen=True, slots=True)
class Framed:
    """One entry, framed once for every listener: its stream id, execution, and SSE bytes."""

    id: tuple[int, int]
    execution_id: bytes
    fields: dict[bytes, bytes]
    data: bytes
    terminal: bool


@dataclass(frozen=True, slots=True)
class Chunk:
    """Frames of one burst for one filter, oldest first, and their joined bytes. `ends`: the
    chunk holds its one execution's terminal event (and nothing after it)."""

    frames: tuple[Framed, ...]
    data: bytes
    ends: bool

    def after(self, last: tuple[int, int]) -> Chunk | None:
        """This chunk without the frames at or before `last` (None if nothing is left)."""
        if self.frames[0].id > last:
            return self
        kept = tuple(f for f in self.frames if f.id > last)
        if not kept:
            return None
        return Chunk(frames=kept, data=b"".join(f.data for f in kept), ends=self.ends)


def framed(entry: Entry) -> Framed:
    """An entry framed once, for every subscriber."""
    entry_id, fields = entry
    return Framed(
        id=stream_id(entry_id),
        execution_id=fields.get(b"execution_id", b""),
        fields=fields,
        data=frame(entry_event(entry)),
        terminal=fields.get(b"status", b"") in _TERMINAL,
    )


def admitted(f: EventFilter, every: list[Framed]) -> Chunk | None:
    """The frames of `every` that `f` admits, as one chunk (None: none); for one execution, up
    to its terminal event."""
    kept: list[Framed] = []
    ends = False
    for one in every:
        if f.admit(one.fields):
            kept.append(one)
            if f.execution_id is not None and one.terminal:
                ends = True
                break
    if not kept:
        return None
    return Chunk(frames=tuple(kept), data=b"".join(k.data for k in kept), ends=ends)


class Feed:
    """Resumable, filtered lifecycle events, for one subscriber at a time, as SSE bytes."""

    def __init__(self, redis: Redis, broadcast: Broadcast, stream: str, capacity: int) -> None:
        self.redis = redis
        self.broadcast = broadcast
        self.stream = stream
        self.capacity = capacity

    async def events(
        self, f: EventFilter, after: str | None, heartbeat_s: float
    ) -> AsyncIterator[bytes | None]:
        """The framed entries passing `f` after stream id `after` (None: from now), then live
        ones, several at a time; None (a heartbeat) once subscribed, then after `heartbeat_s`
        without an event, and a last `cutoff` event when the subscriber's buffer overflowed (it
        resumes from the id that event names). For one execution (`f.execution_id`), the events
        end with its terminal one."""
        async for piece in self.pieces(f, after, heartbeat_s):
            if piece is None:
                yield None
            elif isinstance(piece, Event):
                yield frame(piece)
            else:
                yield piece.data

    async def pieces(
        self, f: EventFilter, after: str | None, heartbeat_s: float
    ) -> AsyncIterator[Chunk | Event | None]:
        """What `events` sends, before it is joined: chunks of framed entries, `gap` and
        `cutoff` events, heartbeats (None); for a reader that re-frames the entries
        (core/streams.py gives them ids of its own)."""
        async with self.broadcast.listen(f, self.capacity) as live:
            # From now on: what the pump hands over from before the tail is skipped.
            last = await self._tail() if after is None else stream_id(after)
            yield None
            if after is not None:
                gap = await self._gap(last)
                if gap is not None:
                    yield gap
                async for chunk in self._backlog(f, after):
                    last = chunk.frames[-1].id
                    yield chunk
                    if chunk.ends:
                        return
            while True:
                chunks = live.take()
                if not chunks and live.overflowed:
                    yield _cutoff(last)
                    return
                for whole in chunks:
                    unsent = whole.after(last)
                    if unsent is None:
                        continue
                    last = unsent.frames[-1].id
                    yield unsent
                    if unsent.ends:
                        return
                if chunks:
                    continue
                try:
                    async with asyncio.timeout(heartbeat_s):
                        await live.ready.wait()
                except TimeoutError:
                    yield None

    async def _tail(self) -> tuple[int, int]:
        newest = await self.redis.xrevrange(self.stream, count=1)
        return stream_id(newest[0][0]) if newest else (0, 0)

    async def _backlog(self, f: EventFilter, after: str) -> AsyncIterator[Chunk]:
        """The stream's entries after `after` that `f` admits, a chunk per read."""
        start = "(" + after
        while True:
            entries = await self.redis.xrange(self.stream, start, "+", count=BACKLOG_COUNT)
            chunk = admitted(f, [framed(e) for e in entries])
            if chunk is not None:
                yield chunk
                if chunk.ends:
                    return
            if len(entries) < BACKLOG_COUNT:
                return
            start = "(" + text(entries[-1][0])

    async def _gap(self, last: tuple[int, int]) -> Event | None:
        """A `gap` event when entries after `last` were trimmed from the stream already."""
        try:
            info = await self.redis.xinfo_stream(self.stream)
        except ResponseError:  # no stream yet: nothing was ever trimmed
            return None
        trimmed = info.get("max-deleted-entry-id")
        if trimmed is None or stream_id(trimmed) <= last:
            return None
        message = "entries after Last-Event-ID were trimmed; re-read the executions you follow"
        return Event(id=None, name="gap", data=msgspec.json.encode({"error": message}))


def _cutoff(last: tuple[int, int]) -> Event:
    resume = f"{last[0]}-{last[1]}"
    return Event(
        id=None,
        name="cutoff",
        data=msgspec.json.encode(
            {
                "error": "this client read too slowly and its buffer filled; reconnect with "
                f"Last-Event-ID: {resume} to carry on without missing anything",
                "code": "slow_consumer",
                "last_event_id": resume,
            }
        ),
    )

"""Lifecycle events for subscribers: the entries of the lifecycle stream that pass a filter,
first those after a resumption point (read back from the stream), then live ones (from the
process's one follower, `Completions`), in stream order, each once.

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

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from agentfield_arq.core.completions import Completions, Entry
from agentfield_arq.kernel.codec import text

BACKLOG_COUNT = 500
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
# Fields of a stream entry that a subscriber sees (`job` is the workers' business).
_SHOWN = ("execution_id", "status", "target", "run_id")


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


class Feed:
    """Resumable, filtered lifecycle events, for one subscriber at a time."""

    def __init__(self, redis: Redis, completions: Completions, capacity: int) -> None:
        self.redis = redis
        self.completions = completions
        self.capacity = capacity

    async def events(
        self, f: EventFilter, after: str | None, heartbeat_s: float
    ) -> AsyncIterator[Event | None]:
        """The entries passing `f` after stream id `after` (None: from now), then live ones;
        yields None (a heartbeat) once subscribed, then after `heartbeat_s` without an event,
        and a last `cutoff` event when the subscriber's buffer overflowed (it resumes from the
        id that event names)."""
        stream = self.completions.stream
        async with self.completions.subscribe(self.capacity) as live:
            # From now on: what the follower hands over from before the tail is skipped.
            last = await self._tail(stream) if after is None else (0, 0)
            yield None
            if after is not None:
                last = stream_id(after)
                gap = await self._gap(stream, last)
                if gap is not None:
                    yield gap
                async for entry in self._backlog(stream, after):
                    last = stream_id(entry[0])
                    if f.admit(entry[1]):
                        yield entry_event(entry)
            loop = asyncio.get_running_loop()
            quiet_until = loop.time() + heartbeat_s
            while True:
                if live.overflowed and live.entries.empty():
                    yield _cutoff(last)
                    return
                try:
                    remaining = max(quiet_until - loop.time(), 0)
                    entry = await asyncio.wait_for(live.entries.get(), remaining)
                except TimeoutError:
                    quiet_until = loop.time() + heartbeat_s
                    yield None
                    continue
                if stream_id(entry[0]) <= last:
                    continue
                last = stream_id(entry[0])
                if f.admit(entry[1]):
                    quiet_until = loop.time() + heartbeat_s
                    yield entry_event(entry)

    async def _tail(self, stream: str) -> tuple[int, int]:
        newest = await self.redis.xrevrange(stream, count=1)
        return stream_id(newest[0][0]) if newest else (0, 0)

    async def _backlog(self, stream: str, after: str) -> AsyncIterator[Entry]:
        start = "(" + after
        while True:
            entries = await self.redis.xrange(stream, start, "+", count=BACKLOG_COUNT)
            for entry in entries:
                yield entry
            if len(entries) < BACKLOG_COUNT:
                return
            start = "(" + text(entries[-1][0])

    async def _gap(self, stream: str, last: tuple[int, int]) -> Event | None:
        """A `gap` event when entries after `last` were trimmed from the stream already."""
        try:
            info = await self.redis.xinfo_stream(stream)
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

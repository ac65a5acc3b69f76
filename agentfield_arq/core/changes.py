"""Memory change events: the memory event stream (`Keys.memory_events`, written by the memory
scripts in the same step as each change), followed by one reader per API process and fanned
out to the WebSocket and SSE subscribers of that process, and read back for the history route.

Like `Completions`, the reader only follows the stream while someone subscribes (see
core/follower.py). A subscriber that falls `QUEUE_MAX` changes behind loses the newest ones,
logged, rather than slowing the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import AsyncIterator

import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.follower import READY_S, StreamFollower
from agentfield_arq.core.keys import MEMORY_EVENTS_MAXLEN, Keys
from agentfield_arq.kernel.codec import encode, text
from agentfield_arq.kernel.errors import Unavailable
from agentfield_arq.kernel.memory import MemoryChangeEvent, MemoryEventMetadata

logger = logging.getLogger(__name__)

QUEUE_MAX = 1000


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One change as subscribers get it: the event, its JSON (encoded once), who wrote it."""

    event: MemoryChangeEvent
    encoded: bytes
    node_id: str


class Filter(msgspec.Struct, frozen=True, kw_only=True):
    """What a subscriber asked for (`scope`, `scope_id`, `patterns` of the query string):
    patterns are globs on the key (`user.*`), any one of which matches."""

    scope: str | None = None
    scope_id: str | None = None
    patterns: tuple[str, ...] = ()

    def matches(self, event: MemoryChangeEvent) -> bool:
        """Whether `event` is one the subscriber asked for."""
        if self.scope and event.scope != self.scope:
            return False
        if self.scope_id and event.scope_id != self.scope_id:
            return False
        return not self.patterns or any(fnmatch.fnmatchcase(event.key, p) for p in self.patterns)


def change(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Change:
    """A stream entry as a `Change`."""
    f = {text(k): v for k, v in fields.items()}

    def raw(name: str) -> msgspec.Raw | None:
        return msgspec.Raw(f[name]) if name in f else None

    event = MemoryChangeEvent(
        id=text(entry_id),
        timestamp=text(f.get("timestamp", b"")),
        scope=text(f.get("scope", b"")),
        scope_id=text(f.get("scope_id", b"")),
        key=text(f.get("key", b"")),
        action=text(f.get("action", b"")),
        data=raw("data"),
        previous_data=raw("previous_data"),
        metadata=MemoryEventMetadata(
            agent_id=text(f.get("agent_id", b"")), workflow_id=text(f.get("workflow_id", b""))
        ),
    )
    return Change(event=event, encoded=encode(event), node_id=text(f.get("node_id", b"")))


class Changes(StreamFollower):
    """Follows the memory event stream for this process's subscribers."""

    read_count = 500
    label = "memory event stream"

    def __init__(self, redis: Redis, keys: Keys) -> None:
        super().__init__(redis, keys.memory_events)
        self._queues: set[asyncio.Queue[Change]] = set()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Change]]:
        """A queue of every change from now on, until the block exits."""
        await self._following.wait()
        queue: asyncio.Queue[Change] = asyncio.Queue(QUEUE_MAX)
        self._queues.add(queue)
        self._wake()
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def ready(self, timeout_s: float = READY_S) -> None:
        """Return once the reader follows the stream; Unavailable if Redis does not let it
        within `timeout_s`."""
        if not await self.following(timeout_s):
            raise Unavailable("the memory event stream cannot be read: Redis does not answer")

    def _listened(self) -> bool:
        return bool(self._queues)

    def _take(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        item = change(entry_id, fields)
        for queue in self._queues:
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                logger.warning("a memory event subscriber is behind; dropped %s", item.event.id)


async def history(
    redis: Redis, keys: Keys, wanted: Filter, since_ms: int | None, limit: int
) -> list[Change]:
    """The newest `limit` changes that match, oldest first, from the stream's retained tail
    (about `MEMORY_EVENTS_MAXLEN` entries), made at or after `since_ms` when given."""
    low = "-" if since_ms is None else f"{since_ms}-0"
    entries = await redis.xrevrange(keys.memory_events, "+", low, count=MEMORY_EVENTS_MAXLEN)
    found: list[Change] = []
    for entry_id, fields in entries:
        item = change(entry_id, fields)
        if wanted.matches(item.event):
            found.append(item)
            if len(found) >= limit:
                break
    found.reverse()
    return found

"""Cross-replica wake-ups: one reader per process follows the lifecycle stream and resolves the
futures of whoever waits for an execution to end (the sync execute route, the long-poll), and
hands every entry to the event subscribers (the SSE routes), each through a bounded buffer: a
subscriber that falls behind is marked overflowed, and the reader never waits for it.

The stream is a hint, not the truth: waiters re-read the status document after their wake-up,
and every `RECHECK_S` one pipelined read takes the status of every execution waited for in this
process and wakes the waiters of those that ended, so a missed entry (trimmed stream, reconnect)
costs latency, never correctness. One read for all: with each waiter re-reading its own
document, 5,000 sync waiters cost the API 1,000 scripts a second and a quarter of a core
(bench/waiters.py).
While nobody waits or subscribes, the reader idles (core/follower.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from agentfield_arq.core.connection import reraise_cancel
from agentfield_arq.core.follower import StreamFollower
from agentfield_arq.core.keys import Keys
from agentfield_arq.kernel.status import TERMINAL_STATUSES

logger = logging.getLogger(__name__)

RECHECK_S = 5.0


Entry = tuple[bytes, dict[bytes, bytes]]


class Subscriber:
    """One event subscriber's buffer of lifecycle entries (id, fields), oldest first. Once full,
    it takes nothing more and says so (`overflowed`): what it missed is still in the stream."""

    def __init__(self, capacity: int) -> None:
        self.entries: asyncio.Queue[Entry] = asyncio.Queue(capacity)
        self.overflowed = False

    def offer(self, entry: Entry) -> None:
        """Buffer an entry without waiting; a full buffer marks the subscriber overflowed."""
        if self.overflowed:
            return
        try:
            self.entries.put_nowait(entry)
        except asyncio.QueueFull:
            self.overflowed = True


class Completions(StreamFollower):
    """Follows `events` and wakes local waiters and subscribers."""

    label = "event stream"

    def __init__(self, redis: Redis, keys: Keys) -> None:
        super().__init__(redis, keys.events)
        self.keys = keys
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._subscribers: set[Subscriber] = set()

    @contextlib.asynccontextmanager
    async def subscribe(self, capacity: int) -> AsyncIterator[Subscriber]:
        """Every entry read from now on, buffered up to `capacity` (see `Subscriber`). The
        first entries may precede the call by up to `IDLE_TAIL_S` (core/follower.py), never
        follow a gap."""
        subscriber = Subscriber(capacity)
        self._subscribers.add(subscriber)
        self._wake()
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    @contextlib.asynccontextmanager
    async def watch(self, execution_id: str) -> AsyncIterator[asyncio.Future[None]]:
        """A future resolved when a terminal event for `execution_id` is seen; register it
        before creating the execution so that no event can slip between the two."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, set()).add(future)
        self._wake()
        try:
            yield future
        finally:
            waiters = self._waiters.get(execution_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[execution_id]

    async def recheck(self) -> None:
        """Until cancelled, every `RECHECK_S`: wake the waiters of executions that ended."""
        while True:
            await asyncio.sleep(RECHECK_S)
            try:
                await self._recheck()
            except RedisError as exc:
                reraise_cancel()
                logger.warning("status recheck failed, retrying: %s", exc)

    async def _recheck(self) -> None:
        """Read the status of every execution waited for here in one round trip (the record's
        field, not the status document, whose result may be megabytes), and wake the waiters
        of those that ended."""
        ids = list(self._waiters)
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for execution_id in ids:
                pipe.hget(self.keys.execution(execution_id), "status")
            statuses: list[bytes | None] = await pipe.execute()
        for execution_id, status in zip(ids, statuses, strict=True):
            if status is not None and status.decode() in TERMINAL_STATUSES:
                self._resolve(execution_id)

    def _listened(self) -> bool:
        return bool(self._waiters or self._subscribers)

    def _take(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        for subscriber in self._subscribers:
            subscriber.offer((entry_id, fields))
        status = fields.get(b"status", b"").decode()
        if status not in TERMINAL_STATUSES:
            return
        self._resolve(fields.get(b"execution_id", b"").decode())

    def _resolve(self, execution_id: str) -> None:
        for future in self._waiters.get(execution_id, ()):
            if not future.done():
                future.set_result(None)

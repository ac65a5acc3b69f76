"""The process's fan-out of lifecycle events to its SSE subscribers: one pump takes the entries
the stream follower (`Completions`) reads, in bursts, frames each entry once, and hands every
listener one chunk per burst: the frames its filter admits, joined. Listeners with the same
filter share the chunk (the bytes are built once per burst, not once per listener), and a
listener of one execution looks only at that execution's entries of the burst.

So a subscriber costs the server one wake-up and one socket write per burst, whatever the
number of events in it, rather than a task wake-up, an encoding and a write per event (at
1,000 subscribers the per-event path kept up with under 10,000 events a second, see the bench).

A listener's buffer is bounded in events (`AGENTFIELD_ARQ_SSE_BUFFER`): one that fills takes
nothing more and is marked overflowed, and the pump never waits for it. The pump runs while
anyone listens, and stops with the last listener, so that an API without subscribers does not
follow the stream for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable

from agentfield_arq.core.completions import Completions, Entry
from agentfield_arq.core.feed import Chunk, EventFilter, Framed, admitted, framed

logger = logging.getLogger(__name__)

# Entries the pump takes from the follower at once (a burst), and how many may wait for it:
# past that it lost entries, and every listener is cut off to resume from the stream.
BURST_MAX = 1000
PUMP_BUFFER = 100_000


class Listener:
    """One subscriber's chunks waiting to be sent, at most `capacity` events in all."""

    def __init__(self, f: EventFilter, capacity: int) -> None:
        self.filter = f
        self.capacity = capacity
        self.overflowed = False
        self.ready = asyncio.Event()
        self._chunks: deque[Chunk] = deque()
        self._pending = 0

    def offer(self, chunk: Chunk) -> None:
        """Buffer a chunk without waiting; one that does not fit marks the listener overflowed
        (what it missed is still in the stream)."""
        if self.overflowed:
            return
        if self._pending + len(chunk.frames) > self.capacity:
            self.overflowed = True
        else:
            self._chunks.append(chunk)
            self._pending += len(chunk.frames)
        self.ready.set()

    def take(self) -> list[Chunk]:
        """Every chunk buffered, oldest first; the buffer is empty after."""
        chunks = list(self._chunks)
        self._chunks.clear()
        self._pending = 0
        self.ready.clear()
        return chunks


class Broadcast:
    """Hands the follower's entries to listeners, chunked per burst (see the module)."""

    def __init__(self, completions: Completions) -> None:
        self.completions = completions
        self._listeners: set[Listener] = set()
        self._pump: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def listen(self, f: EventFilter, capacity: int) -> AsyncIterator[Listener]:
        """A listener of every entry read from now on that passes `f` (the first may precede
        the call by up to the follower's idle lag, never follow a gap)."""
        listener = Listener(f, capacity)
        self._listeners.add(listener)
        if self._pump is None:
            self._subscribed.clear()
            self._pump = asyncio.create_task(self._run(), name="event-broadcast")
        await self._subscribed.wait()
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
            if not self._listeners and self._pump is not None:
                self._pump.cancel()
                self._pump = None

    async def _run(self) -> None:
        try:
            while True:
                async with self.completions.subscribe(PUMP_BUFFER) as live:
                    self._subscribed.set()
                    while not live.overflowed:
                        burst = [await live.entries.get()]
                        while len(burst) < BURST_MAX and not live.entries.empty():
                            burst.append(live.entries.get_nowait())
                        self.hand(burst)
                logger.warning("event fan-out fell %d entries behind; cutting off", PUMP_BUFFER)
                self._cut_off()
        except Exception:
            logger.exception("event fan-out failed; its subscribers are cut off to resume")
            self._pump = None
            self._cut_off()

    def _cut_off(self) -> None:
        """Every listener ends with a cutoff naming what it was sent, to resume from."""
        for listener in self._listeners:
            listener.overflowed = True
            listener.ready.set()

    def hand(self, burst: Iterable[Entry]) -> None:
        """Give each listener the chunk of `burst` its filter admits, built once per filter."""
        every = [framed(entry) for entry in burst]
        by_execution: dict[bytes, list[Framed]] = {}
        for one in every:
            by_execution.setdefault(one.execution_id, []).append(one)
        chunks: dict[EventFilter, Chunk | None] = {}
        for listener in self._listeners:
            f = listener.filter
            if f not in chunks:
                chosen = every
                if f.execution_id is not None:
                    chosen = by_execution.get(f.execution_id.encode(), [])
                chunks[f] = admitted(f, chosen)
            chunk = chunks[f]
            if chunk is not None:
                listener.offer(chunk)

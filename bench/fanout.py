"""SSE fan-out: one API process serving `GET /api/v1/events` to many subscribers while
executions are queued as fast as the fast path can. Per run: lifecycle events delivered per
second (all subscribers together), the p99 delay from the stream entry (its id is Redis' clock)
to its arrival at a subscriber, and the API's RSS; the baseline is one subscriber, measured in
the same run the same way.

Subscribers are raw sockets in this process counting the event frames in what they read, so
that the client costs little; the file-descriptor limit is raised to what they need. With
`--profile`, the API is sampled by py-spy through the first run's round of many subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time

from bench import fill
from bench.harness import Harness
from bench.load import ADMIN_KEY
from bench.plan import Plan
from bench.stats import Figure, figure, percentile

HOST = "127.0.0.1"
# Each subscriber keeps at most this many delays.
SAMPLE = 1000
READ_BYTES = 65536
PROFILE_S = 20
MARK = b"\nid: "


class Tally:
    """Events read by all subscribers of a round; `done` once `expected` have arrived."""

    def __init__(self) -> None:
        self.events = 0
        self.expected = 0
        self.done = asyncio.Event()

    def add(self, events: int) -> None:
        self.events += events
        if self.expected and self.events >= self.expected:
            self.done.set()


class Subscriber:
    """One SSE connection; counts the events it reads and samples their delays (ms): of the
    first event of each read, the oldest of what arrived together."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.delays: list[float] = []
        self.subscribed = asyncio.Event()

    async def read(self, port: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(
            f"GET /api/v1/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: Bearer {ADMIN_KEY}\r\n\r\n".encode()
        )
        carry = b""
        try:
            while data := await reader.read(READ_BYTES):
                arrived_ms = time.time() * 1000
                if not self.subscribed.is_set() and b": heartbeat" in data:
                    self.subscribed.set()
                # Every event's frame has an `id:` line. The tail of the last read is kept, so
                # that a mark cut in two by a read is counted once, with its second part.
                data = carry + data
                carry = data[1 - len(MARK) :]
                events = data.count(MARK)
                if not events:
                    continue
                self.tally.add(events)
                at = data.index(MARK) + len(MARK)
                dash = data.find(b"-", at)
                if len(self.delays) < SAMPLE and dash > at:
                    self.delays.append(arrived_ms - int(data[at:dash]))
        finally:
            writer.close()


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


async def _round(h: Harness, plan: Plan, port: int, subscribers: int) -> tuple[float, float]:
    """Events delivered per second and the p99 delay (ms) with `subscribers` connected."""
    tally = Tally()
    readers = [Subscriber(tally) for _ in range(subscribers)]
    tasks = [asyncio.create_task(r.read(port)) for r in readers]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(r.subscribed.wait() for r in readers))
        started = time.perf_counter()
        tally.expected = plan.fanout_events * subscribers
        await fill.fill_ours(h, plan.fanout_events)
        with contextlib.suppress(TimeoutError):  # a short count is reported as it is
            await asyncio.wait_for(tally.done.wait(), 120)
        seconds = time.perf_counter() - started
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
    delays = [d for r in readers for d in r.delays]
    return tally.events / seconds, percentile(delays, 0.99) if delays else 0.0


async def measure(h: Harness, plan: Plan, agent_url: str) -> list[Figure]:
    """Per run, the fan-out to `plan.fanout_subscribers` against one subscriber."""
    _raise_fd_limit(plan.fanout_subscribers * 2 + 256)
    rate: dict[str, list[float]] = {"many": [], "one": []}
    p99: dict[str, list[float]] = {"many": [], "one": []}
    rss: list[float] = []
    for run in range(plan.runs):
        h.flush()
        await h.register_node(agent_url)
        port = await h.start_api()
        try:
            for name, count in (("one", 1), ("many", plan.fanout_subscribers)):
                spy = None
                if plan.profile and run == 0 and name == "many":
                    spy = await h.profile("api", PROFILE_S, "api-fanout")
                delivered, delay = await _round(h, plan, port, count)
                if spy is not None:
                    await spy.wait()
                rate[name].append(delivered)
                p99[name].append(delay)
            rss.append(h.rss_kb("api") / 1024)
        finally:
            h.stop("api")
    n = plan.fanout_subscribers
    note = f"{plan.fanout_events:,} executions queued per round; delays from the stream entry"
    return [
        figure("sse_rate", f"SSE fan-out, {n:,} subscribers: events delivered", "events/s",
               rate["many"], rate["one"], ratio_of="many / one subscriber", note=note),
        figure("sse_p99", "  p99 delay, entry to subscriber", "ms", p99["many"], p99["one"],
               ratio_of="many / one subscriber"),
        figure("sse_api_rss", f"  API RSS with {n:,} subscribers", "MiB", rss),
    ]  # fmt: skip

"""A worker's liveness lease in Redis, and the reaper that every worker runs beside it.

Each worker process scores its id in `Keys.workers` with the time its lease lapses, and renews
it three times per lease. Claiming an execution records the worker as its holder
(`Keys.holders`); an execution whose holder's lease has lapsed is queued again by whichever
worker's reaper sees it first, so recovery after a SIGKILL takes about a lease and a third,
whatever the agent timeout (arq's own in-progress lock is not waited for: the hand-back gives
the execution a fresh job id).

A live worker's own holds are reconciled with what it runs: whenever its reaper reads the
holders, it also hands back those naming it of which no run job is in `running`. Such a hold
outlived its attempt because the settle that ended it was lost: written to a primary that died
before a replica had it (a Sentinel failover), or cut short by an outage. Every other worker
refuses such an execution as held by a live worker, and arq may have dropped its job, so
without this it stayed `running` until its deadline. The first beat after a failed one reads
the holders at once, since an outage is when writes are lost.

Each beat also renews arq's in-progress lock of the run jobs this worker runs now (`running`,
shared with its Runner). arq's lock (`Settings.lock_timeout_s`) is sized for deliveries, far
shorter than the longest agent call; without the renewal arq would start a long call's job a
second time once its lock lapsed.

A running worker beats from a thread of its own (`Heartbeat`), with a synchronous client of its
own: the beat must not wait behind the event loop. When thousands of agent answers arrive at
once the loop has seconds of CPU queued; a beat taken on the loop then came late, the lease
lapsed, another worker's reaper handed the executions back, and they ran twice (1,580 repeated
agent calls over two slow drains of the bench under load). The reaper stays on the loop: what
it does is no liveness, and a late reap only delays a recovery.

The thread renews only while the loop still runs: each beat asks the loop to tick
(`call_soon_threadsafe(tick)`), and finds the last tick no older than `worker_stall_s` (30 s),
or skips. A tick is a single callback, so a loop merely busy ticks late by one pass over its
ready work (a turn of `run` takes several, each awaiting Redis behind thousands of calls, and
was seen 30 s late in a drain under load); a loop that is wedged (a blocking call, a deadlock)
does not tick at all, and its worker then loses its lease as a dead one would, only
`worker_stall_s` later. The bound is ten leases: far beyond the stalls of a busy worker (the
longest is logged), and short beside the agent calls a wedged worker would keep from running
again. The lock renewals go with the beat, for the run jobs of the loop's last tick (`jobs`, a
snapshot the loop writes and the thread only reads): a job started since
holds a fresh lock, and renewing one that ended is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import redis
import redis.asyncio.client
import redis.client
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.recovery import reap
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import new_id, now_ms, text

logger = logging.getLogger(__name__)

# Renewals per lease: a worker may miss two and still be live.
BEATS_PER_LEASE = 3
# Without any lapsed lease in sight, the holders are still scanned every this many beats, for
# holders whose lease entry is gone altogether (a reaper that died half-way) and for holds of
# this worker's own that a lost write left behind.
FULL_SCAN_BEATS = 10


def _renewals(
    pipe: redis.client.Pipeline | redis.asyncio.client.Pipeline,
    lease: WorkerLease,
    jobs: tuple[str, ...] | set[str],
) -> None:
    """A beat's commands, on a pipeline of either client: the lease for another
    `worker_lease_s`, and arq's locks of `jobs`."""
    until = now_ms() + round(lease.settings.worker_lease_s * 1000)
    lock_ms = round(lease.settings.lock_timeout_s * 1000)
    pipe.zadd(lease.keys.workers, {lease.worker_id: until})
    for job_id in list(jobs):
        pipe.pexpire(Keys.arq_in_progress(job_id), lock_ms)


class WorkerLease:
    """This worker's lease (`beat`, `release`) and its reaper (`reap`), taken in turns by
    `run`; with `start_heartbeat`, the beats come from a thread of their own."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        worker_id: str | None = None,
        running: set[str] | None = None,
    ) -> None:
        self.redis = redis
        self.running = set() if running is None else running
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.store = ExecutionStore(redis, settings)
        self.worker_id = worker_id or new_id("wrk")
        self.interval_s = settings.worker_lease_s / BEATS_PER_LEASE
        self._beats = 0
        # Redis failed this worker since the holders were last read: read them at once.
        self._away = False
        # The heartbeat thread's failed beats, and how many of them the last reap had seen.
        self.failed_beats = 0
        self._failed_seen = 0
        self.heartbeat: Heartbeat | None = None
        self.tick()

    def tick(self) -> None:
        """The loop runs: note when, and the run jobs it runs now (for the heartbeat thread)."""
        self.jobs = tuple(self.running)
        self.ticked = time.monotonic()

    async def beat(self) -> None:
        """Renew this worker's lease for another `worker_lease_s`, and arq's locks of the run
        jobs it runs."""
        async with self.redis.pipeline(transaction=False) as pipe:
            _renewals(pipe, self, self.running)
            await pipe.execute()

    def start_heartbeat(self, client: redis.Redis) -> None:
        """From now on the beats come from a thread of their own, on `client` (synchronous:
        `connection.connect_sync`), while the running loop ticks; `run` only reaps."""
        self.tick()
        self.heartbeat = Heartbeat(self, client, asyncio.get_running_loop())
        self.heartbeat.start()

    async def reap(self) -> int:
        """Queue again what workers whose lease lapsed were holding, and what this worker is
        recorded as holding but does not run; returns how many."""
        # The first one too: a worker starting.
        failed = self.failed_beats
        full_scan = self._away or failed != self._failed_seen or self._beats % FULL_SCAN_BEATS == 0
        self._beats += 1
        now = now_ms()
        lapsed = await self.redis.zrangebyscore(self.keys.workers, "-inf", now)
        if not lapsed and not full_scan:
            return 0
        live = {
            text(w) for w in await self.redis.zrangebyscore(self.keys.workers, f"({now}", "+inf")
        }
        queued = await reap(self.store, live, worker_id=self.worker_id, running=self.running)
        self._away = False
        self._failed_seen = failed
        if lapsed:
            await self.redis.zremrangebyscore(self.keys.workers, "-inf", now)
            logger.warning("workers lost: %s", ", ".join(text(w) for w in lapsed))
        return queued

    async def run(self) -> None:
        """Take a turn every `interval_s` until cancelled."""
        while True:
            await self.turn()
            await asyncio.sleep(self.interval_s)

    async def turn(self) -> None:
        """Beat (unless the heartbeat thread does) and reap; a Redis error skips the rest of the
        turn, it does not stop the lease, and has the next turn read the holders."""
        try:
            if self.heartbeat is None:
                await self.beat()
            await self.reap()
        except RedisError as exc:
            self._away = True
            logger.warning("worker lease not renewed: %s", exc)

    async def release(self) -> None:
        """This worker stops: its lease lapses at once. What it held was handed back before;
        anything it could not hand back is reaped at the next beat of any worker. The heartbeat
        thread ends first, so that no beat of it can come after and revive the lease."""
        if self.heartbeat is not None:
            await asyncio.to_thread(self.heartbeat.stop)
        with contextlib.suppress(RedisError):
            await self.redis.zadd(self.keys.workers, {self.worker_id: 0})


class Heartbeat:
    """The beats of a `WorkerLease`, every `interval_s` from a thread of its own, while its
    loop has ticked within `worker_stall_s` (each beat asks it to tick)."""

    def __init__(
        self, lease: WorkerLease, client: redis.Redis, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.lease = lease
        self.client = client
        self.loop = loop
        self.stall_s = lease.settings.worker_stall_s
        # The longest the loop went without a tick, as a beat saw it.
        self.longest_stall_s = 0.0
        self._lapsing = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{lease.worker_id}", daemon=True
        )

    def start(self) -> None:
        """Start beating."""
        self._thread.start()

    @property
    def beating(self) -> bool:
        """Whether the thread is still running (started and not stopped)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop beating; returns once no beat is under way (blocks: call from a thread)."""
        self._stopped.set()
        self._thread.join()

    def beat(self) -> bool:
        """One beat, unless the loop has not ticked within `stall_s`; True if it was sent.
        A Redis error is counted (the next reap reads the holders), not raised."""
        stalled_s = time.monotonic() - self.lease.ticked
        with contextlib.suppress(RuntimeError):  # the loop closed: no tick ever again
            self.loop.call_soon_threadsafe(self.lease.tick)
        if stalled_s > self.stall_s:
            if not self._lapsing:
                logger.error("event loop stalled %.1fs: its lease is left to lapse", stalled_s)
            self._lapsing = True
            return False
        self._lapsing = False
        if stalled_s > max(self.longest_stall_s, self.lease.settings.worker_lease_s):
            logger.warning("event loop stalled %.1fs; its lease renewed all the same", stalled_s)
        self.longest_stall_s = max(self.longest_stall_s, stalled_s)
        try:
            with self.client.pipeline(transaction=False) as pipe:
                _renewals(pipe, self.lease, self.lease.jobs)
                pipe.execute()
        except RedisError as exc:
            self.lease.failed_beats += 1
            logger.warning("worker lease not renewed: %s", exc)
            return False
        return True

    def _run(self) -> None:
        while not self._stopped.wait(self.lease.interval_s):
            self.beat()

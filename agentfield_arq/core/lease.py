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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

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


class WorkerLease:
    """This worker's lease (`beat`, `release`) and its reaper (`reap`), taken in turns by
    `run`."""

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

    async def beat(self) -> None:
        """Renew this worker's lease for another `worker_lease_s`, and arq's locks of the run
        jobs it runs."""
        until = now_ms() + round(self.settings.worker_lease_s * 1000)
        lock_ms = round(self.settings.lock_timeout_s * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.workers, {self.worker_id: until})
            for job_id in list(self.running):
                pipe.pexpire(Keys.arq_in_progress(job_id), lock_ms)
            await pipe.execute()

    async def reap(self) -> int:
        """Queue again what workers whose lease lapsed were holding, and what this worker is
        recorded as holding but does not run; returns how many."""
        # The first one too: a worker starting.
        full_scan = self._away or self._beats % FULL_SCAN_BEATS == 0
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
        """Beat and reap; a Redis error skips the rest of the turn, it does not stop the lease,
        and has the next turn read the holders."""
        try:
            await self.beat()
            await self.reap()
        except RedisError as exc:
            self._away = True
            logger.warning("worker lease not renewed: %s", exc)

    async def release(self) -> None:
        """This worker stops: its lease lapses at once. What it held was handed back before;
        anything it could not hand back is reaped at the next beat of any worker."""
        with contextlib.suppress(RedisError):
            await self.redis.zadd(self.keys.workers, {self.worker_id: 0})

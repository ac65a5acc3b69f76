"""The arq worker, woken by new work instead of only polling for it.

arq polls its queue every `poll_delay`; an idle worker leaves a new job waiting half of that on
average, and with the default 50 ms that wait was most of an idle execution's end-to-end
latency (bench/: 14 ms of 19 ms). Every execution's creation appends a `queued` entry to the
lifecycle stream in the same Lua script that queues its job, so a worker with free slots blocks
on that stream (XREAD BLOCK, on a connection of its own) between polls, and polls again as soon
as an execution is queued.

A terminal entry that queued a webhook delivery carries `job`, and wakes workers too. The poll
delay stays the upper bound of every wait, so delayed retries and redriven deliveries (queued
without an entry) are found exactly as before. A worker whose slots are all
taken sleeps the poll delay as arq does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.queue import connect
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.status import Status
from agentfield_arq.workers.settings import worker_settings

logger = logging.getLogger(__name__)

READ_COUNT = 100
QUEUED = Status.QUEUED.value.encode()


class Wake:
    """Waits for an entry that queued a job (`queued`, or one with `job`) newer than what this
    worker has seen, or a deadline."""

    def __init__(self, redis: Redis, stream: str) -> None:
        self.redis = redis
        self.stream = stream
        self.cursor: bytes | str | None = None

    async def prime(self) -> None:
        """Move the cursor to the stream's tail; done before a poll, so that whatever is
        queued after that poll looked at the queue has an entry newer than the cursor."""
        last = await self.redis.xrevrange(self.stream, count=1)
        self.cursor = last[0][0] if last else "0-0"

    async def wait(self, deadline: float) -> bool:
        """True as soon as an execution is queued, False at `deadline` (loop time)."""
        if self.cursor is None:
            await self.prime()
        loop = asyncio.get_running_loop()
        while (left_ms := round((deadline - loop.time()) * 1000)) > 0:
            assert self.cursor is not None
            replies = await self.redis.xread(
                {self.stream: self.cursor}, count=READ_COUNT, block=left_ms
            )
            if not replies:
                return False
            queued = False
            for _stream, entries in replies:
                for entry_id, fields in entries:
                    self.cursor = entry_id
                    queued = queued or fields.get(b"status") == QUEUED or b"job" in fields
            if queued:
                return True
        return False


class WakingWorker(Worker):
    """arq's Worker, polling at once when the lifecycle stream says something was queued."""

    def __init__(self, *, wake_url: str, wake_stream: str, **kwargs: Any) -> None:
        self.wait_s = float(kwargs.pop("poll_delay"))
        # arq's own loop must not sleep between polls: _poll_iteration below does the waiting.
        super().__init__(poll_delay=0, **kwargs)
        self.wake_redis = connect(wake_url)
        self.wake = Wake(self.wake_redis, wake_stream)

    async def _poll_iteration(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        if self.wake.cursor is None:
            await self._guarded(self.wake.prime())
        await super()._poll_iteration()
        if self.job_counter < self.max_jobs:
            if await self._guarded(self.wake.wait(began + self.wait_s)):
                return
        else:
            # Busy: by the next wait the cursor would be far behind; start again at the tail.
            self.wake.cursor = None
        await asyncio.sleep(max(0.0, self.wait_s - (loop.time() - began)))

    async def _guarded(self, step: Coroutine[Any, Any, bool | None]) -> bool:
        """A wake-up step; if Redis fails it, fall back to plain polling (arq's own polls will
        report the outage)."""
        try:
            return bool(await step)
        except RedisError as exc:
            logger.warning("wake-up stream unavailable, polling instead: %s", exc)
            self.wake.cursor = None
            return False

    async def close(self) -> None:
        """arq's shutdown, then the wake-up connection's."""
        try:
            await super().close()
        finally:
            with contextlib.suppress(RedisError):
                await self.wake_redis.aclose()


def create_worker(settings: Settings) -> WakingWorker:
    """The worker process's Worker, configured by `workers.settings.worker_settings`."""
    return WakingWorker(
        wake_url=settings.redis_url,
        wake_stream=Keys(settings.key_prefix).events,
        **worker_settings(settings),
    )

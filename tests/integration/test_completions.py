"""The lifecycle-stream follower of the API: it wakes sync waiters, and idles while none waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis
from redis.asyncio import Redis

from agentfield_arq.core import completions as completions_module
from agentfield_arq.core.completions import Completions
from agentfield_arq.core.connection import connect
from agentfield_arq.core.follower import IDLE_TAIL_S
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings

pytestmark = pytest.mark.integration


class Observed(Completions):
    """The follower under test, unchanged, with its idle moves to the stream's tail and its
    rechecks counted so that a test can wait for the next one instead of sleeping for about as
    long."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        super().__init__(client, keys)
        self.tails = 0
        self.rechecks = 0
        self._tailed = asyncio.Condition()

    async def _tail(self) -> bytes | str:
        cursor = await super()._tail()
        async with self._tailed:
            self.tails += 1
            self._tailed.notify_all()
        return cursor

    async def _recheck(self) -> None:
        await super()._recheck()
        async with self._tailed:
            self.rechecks += 1
            self._tailed.notify_all()

    async def rechecked(self, times: int) -> None:
        """Return once `times` more rechecks have read the waiters' documents."""
        target = self.rechecks + times
        async with self._tailed, asyncio.timeout(5):
            await self._tailed.wait_for(lambda: self.rechecks >= target)

    async def tailed(self, times: int) -> None:
        """Return once the cursor has moved to the tail `times` more times (each move waits
        out IDLE_TAIL_S of idleness: that much time must pass, by design)."""
        target, timeout_s = self.tails + times, IDLE_TAIL_S * (times + 4)
        try:
            async with self._tailed:
                await asyncio.wait_for(
                    self._tailed.wait_for(lambda: self.tails >= target), timeout_s
                )
        except TimeoutError:
            missing = target - self.tails
            raise AssertionError(
                f"{missing} of {times} idle moves missing after {timeout_s}s"
            ) from None


@pytest.fixture
async def completions(settings: Settings) -> AsyncIterator[Observed]:
    reader = connect(settings.redis_url)
    follower = Observed(reader, Keys(settings.key_prefix))
    task = asyncio.create_task(follower.run())
    yield follower
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await reader.aclose()


async def _event(redis: Redis, execution_id: str, status: str) -> None:
    await redis.xadd(Keys("t").events, {"execution_id": execution_id, "status": status})


async def _xread_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_xread", {}).get("calls", 0))


async def test_a_waiter_is_woken_by_the_terminal_event_of_its_execution(
    completions: Completions, redis_client: Redis
) -> None:
    async with completions.watch("exec_a") as finished:
        await _event(redis_client, "exec_a", "running")
        await _event(redis_client, "exec_a", "succeeded")
        await asyncio.wait_for(finished, 5)


async def test_a_waiter_arriving_after_an_idle_spell_misses_no_event(
    completions: Observed, redis_client: Redis, settings: Settings
) -> None:
    await _event(redis_client, "exec_old", "succeeded")
    # Two moves: the second began after the event, so the cursor is at it, not before it.
    await completions.tailed(2)
    with contextlib.closing(redis.Redis.from_url(settings.redis_url)) as blocking:
        async with completions.watch("exec_b") as finished:
            # Appended before the reader can run again: a blocking call yields to no one.
            blocking.xadd(Keys("t").events, {"execution_id": "exec_b", "status": "succeeded"})
            await asyncio.wait_for(finished, 5)


async def test_while_nobody_waits_the_reader_does_not_follow_the_stream(
    completions: Observed, redis_client: Redis
) -> None:
    await completions.tailed(1)  # running, and idle: nobody waits
    before = await _xread_calls(redis_client)
    for n in range(50):
        await _event(redis_client, f"exec_{n}", "queued")
    # Two more moves: one whole idle spell passed after the events, in which it read none.
    await completions.tailed(2)
    assert await _xread_calls(redis_client) == before


@pytest.fixture
async def rechecking(
    completions: Observed, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Observed]:
    monkeypatch.setattr(completions_module, "RECHECK_S", 0.02)
    task = asyncio.create_task(completions.recheck())
    yield completions
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_waiter_whose_terminal_event_was_missed_is_woken_by_the_recheck(
    rechecking: Observed, redis_client: Redis
) -> None:
    async with rechecking.watch("exec_c") as finished:
        # The execution ends without a stream entry, as when the entry was trimmed unread.
        await redis_client.hset(Keys("t").execution("exec_c"), "status", "succeeded")  # type: ignore[misc]  # redis-py's async stubs
        await asyncio.wait_for(finished, 5)


async def test_the_recheck_leaves_waiting_whoever_waits_for_an_execution_not_ended(
    rechecking: Observed, redis_client: Redis
) -> None:
    await redis_client.hset(Keys("t").execution("exec_d"), "status", "running")  # type: ignore[misc]  # redis-py's async stubs
    async with rechecking.watch("exec_d") as finished:
        await rechecking.rechecked(2)
        assert not finished.done()

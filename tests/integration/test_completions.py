"""The lifecycle-stream follower of the API: it wakes sync waiters, and idles while none waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from agentfield_arq.core.completions import IDLE_TAIL_S, Completions
from agentfield_arq.core.connection import connect
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def completions(settings: Settings) -> AsyncIterator[Completions]:
    reader = connect(settings.redis_url)
    follower = Completions(reader, Keys(settings.key_prefix))
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
    completions: Completions, redis_client: Redis
) -> None:
    await _event(redis_client, "exec_old", "succeeded")
    await asyncio.sleep(IDLE_TAIL_S * 2.5)
    async with completions.watch("exec_b") as finished:
        # Appended at once, before the reader has had a chance to run again.
        await _event(redis_client, "exec_b", "succeeded")
        await asyncio.wait_for(finished, 5)


async def test_while_nobody_waits_the_reader_does_not_follow_the_stream(
    completions: Completions, redis_client: Redis
) -> None:
    await asyncio.sleep(IDLE_TAIL_S)
    before = await _xread_calls(redis_client)
    for n in range(50):
        await _event(redis_client, f"exec_{n}", "queued")
    await asyncio.sleep(IDLE_TAIL_S * 1.5)
    assert await _xread_calls(redis_client) == before

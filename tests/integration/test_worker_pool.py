"""The worker's Redis pool: at most `worker_redis_connections` open, a command beyond them waits."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import arq_pool
from agentfield_arq.core.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_command_beyond_the_workers_connections_waits_for_one_instead_of_opening_more(
    settings: Settings, redis_client: Redis
) -> None:
    pool = arq_pool(msgspec.structs.replace(settings, worker_redis_connections=1), "q")
    try:
        holding = asyncio.create_task(pool.blpop(["held"], timeout=2))
        while not pool.connection_pool._in_use_connections:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(pool.get("other"))
        done, _ = await asyncio.wait({waiting}, timeout=0.2)
        assert not done
        await redis_client.lpush("held", b"x")
        assert await asyncio.wait_for(holding, 2) == (b"held", b"x")
        assert await asyncio.wait_for(waiting, 2) is None
        opened = pool.connection_pool._available_connections  # type: ignore[attr-defined]
        assert len(opened) == 1
    finally:
        await pool.aclose(close_connection_pool=True)

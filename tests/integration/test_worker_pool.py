"""The worker's Redis pool: at most `worker_redis_connections` open, a command beyond them waits."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from arq.connections import ArqRedis

from agentfield_arq.core.arq_bridge import arq_pool
from agentfield_arq.core.settings import Settings

pytestmark = pytest.mark.integration


async def _get(pool: ArqRedis, key: str) -> object:
    return await pool.get(key)


async def test_a_command_beyond_the_workers_connections_waits_for_one_instead_of_opening_more(
    settings: Settings,
) -> None:
    pool = arq_pool(msgspec.structs.replace(settings, worker_redis_connections=1), "q")
    connections = pool.connection_pool
    try:
        held = await connections.get_connection()
        waiting = asyncio.create_task(_get(pool, "other"))
        done, _ = await asyncio.wait({waiting}, timeout=0.2)
        assert not done
        await connections.release(held)
        assert await asyncio.wait_for(waiting, 2) is None
        assert connections._available_connections == [held]
    finally:
        await pool.aclose(close_connection_pool=True)

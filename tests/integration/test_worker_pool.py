"""The worker's Redis pool: at most `worker_redis_connections` open, a command beyond them waits
for a connection in turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from arq.connections import ArqRedis

from agentfield_arq.core.arq_bridge import arq_pool
from agentfield_arq.core.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    """The worker's pool, capped at one connection."""
    pool = arq_pool(msgspec.structs.replace(settings, worker_redis_connections=1), "q")
    yield pool
    await pool.aclose(close_connection_pool=True)


async def _set(pool: ArqRedis, key: str, order: list[str]) -> None:
    await pool.set(key, b"1")
    order.append(key)


async def test_a_command_beyond_the_workers_connections_waits_for_one_instead_of_opening_more(
    pool: ArqRedis,
) -> None:
    connections = pool.connection_pool
    held = await connections.get_connection()
    order: list[str] = []
    waiting = [asyncio.create_task(_set(pool, key, order)) for key in ("first", "second")]
    done, _ = await asyncio.wait(waiting, timeout=0.2)
    assert not done
    await connections.release(held)
    await asyncio.wait_for(asyncio.gather(*waiting), 2)
    assert order == ["first", "second"]
    assert connections._available_connections == [held]


async def test_a_waiter_cancelled_in_line_leaves_the_connection_to_the_next(
    pool: ArqRedis,
) -> None:
    connections = pool.connection_pool
    held = await connections.get_connection()
    order: list[str] = []
    cancelled = asyncio.create_task(_set(pool, "cancelled", order))
    waiting = asyncio.create_task(_set(pool, "next", order))
    await asyncio.wait({cancelled, waiting}, timeout=0.1)
    cancelled.cancel()
    await connections.release(held)
    await asyncio.wait_for(waiting, 2)
    assert order == ["next"]
    assert connections._available_connections == [held]

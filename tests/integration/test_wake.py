"""The worker's wake-up: an idle worker learns from the lifecycle stream that work was queued."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import Wake
from agentfield_arq.core.keys import Keys

pytestmark = pytest.mark.integration


async def _event(redis: Redis, status: str) -> None:
    await redis.xadd(Keys("t").events, {"execution_id": "exec_1", "status": status})


def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_a_waiting_worker_wakes_as_soon_as_an_execution_is_queued(
    redis_client: Redis,
) -> None:
    wake = Wake(redis_client, Keys("t").events)
    await wake.prime()
    waiting = asyncio.create_task(wake.wait(_deadline(10)))
    await asyncio.sleep(0.05)
    await _event(redis_client, "queued")
    assert await asyncio.wait_for(waiting, 2) is True


async def test_other_lifecycle_entries_do_not_wake_it_before_its_deadline(
    redis_client: Redis,
) -> None:
    wake = Wake(redis_client, Keys("t").events)
    await wake.prime()
    await _event(redis_client, "running")
    await _event(redis_client, "succeeded")
    assert await wake.wait(_deadline(0.2)) is False


async def test_an_execution_queued_between_the_poll_and_the_wait_is_not_missed(
    redis_client: Redis,
) -> None:
    wake = Wake(redis_client, Keys("t").events)
    await wake.prime()  # before the poll
    await _event(redis_client, "queued")  # after the poll looked at the queue
    assert await asyncio.wait_for(wake.wait(_deadline(10)), 2) is True


async def test_a_terminal_entry_that_queued_a_webhook_delivery_wakes_it(
    redis_client: Redis,
) -> None:
    wake = Wake(redis_client, Keys("t").events)
    await wake.prime()
    await redis_client.xadd(
        Keys("t").events, {"execution_id": "exec_1", "status": "succeeded", "job": "webhook"}
    )
    assert await asyncio.wait_for(wake.wait(_deadline(10)), 2) is True

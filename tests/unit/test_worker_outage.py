"""A Redis outage does not end a worker: its poll loop polls again, and a job start that failed
gives its slot back (arq takes it before the Redis steps). No Redis is needed: the pool fails."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agentfield_arq.core import arq_bridge
from agentfield_arq.core.arq_bridge import WakingWorker
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import from_env
from agentfield_arq.workers.settings import worker_settings

SETTINGS = from_env({}, redis_url="redis://127.0.0.1:1/0", worker_concurrency=2)


class DownPool:
    """Stands in for arq's pool while Redis is away: every command fails to connect."""

    default_queue_name = Keys(SETTINGS.key_prefix).queue

    async def zrangebyscore(self, *args: Any, **kwargs: Any) -> list[bytes]:
        return [b"exec_1", b"exec_2"]  # read before Redis went away

    async def evalsha(self, *args: Any) -> Any:
        raise RedisConnectionError("Connection refused")

    @contextlib.asynccontextmanager
    async def pipeline(self, transaction: bool = True) -> AsyncIterator[Any]:
        raise RedisConnectionError("Connection refused")
        yield  # an async generator, as arq's pipeline is entered with `async with`


class DownStream:
    """Stands in for the wake-up connection while Redis is away."""

    async def xrevrange(self, *args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Connection refused")

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Connection refused")


@pytest.fixture
async def worker(monkeypatch: pytest.MonkeyPatch) -> WakingWorker:
    monkeypatch.setattr(arq_bridge, "OUTAGE_BASE_S", 0.0)
    kwargs = worker_settings(SETTINGS)
    kwargs.update(handle_signals=False, redis_pool=DownPool())
    worker = WakingWorker(settings=SETTINGS, wake_stream="af:events", **kwargs)
    worker.wake.redis = DownStream()  # type: ignore[assignment]
    return worker


async def test_a_failed_poll_is_survived_and_counted(worker: WakingWorker) -> None:
    await worker._poll_iteration()
    await worker._poll_iteration()
    assert worker.failed_polls == 2


async def test_a_job_start_that_redis_failed_gives_its_slot_back(worker: WakingWorker) -> None:
    free = worker.sem._value
    for _ in range(5):  # more failed starts than the worker has slots
        await worker._poll_iteration()
    assert worker.job_counter == 0
    assert worker.sem._value == free

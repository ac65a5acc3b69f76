"""A worker's job starts (start_jobs.lua): a job that another worker runs is asked about once,
not at every poll, and is started once its lock lapses or the job leaves the queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import NoReturn

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

from agentfield_arq.core.arq_bridge import IN_PROGRESS_KEY_PREFIX, WakingWorker
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import now_ms
from agentfield_arq.workers.worker import create_worker

pytestmark = [
    pytest.mark.integration,
    # arq 0.28's Worker.close calls redis-py's deprecated close().
    pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning"),
]

JOB = "exec_run"
POLLS = 5


class Started:
    """Stands in for arq's `run_job`: records each start and runs until released."""

    def __init__(self) -> None:
        self.jobs: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, job_id: str, score: int) -> None:
        self.jobs.append(job_id)
        await self.release.wait()


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[Callable[[], WakingWorker]]:
    made: list[WakingWorker] = []

    def make() -> WakingWorker:
        made.append(create_worker(settings, burst=True, handle_signals=False))
        return made[-1]

    yield make
    for worker in made:
        await worker.close()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[WakingWorker], Started]]:
    fakes: list[Started] = []

    def fake(worker: WakingWorker) -> Started:
        fakes.append(Started())
        monkeypatch.setattr(worker, "run_job", fakes[-1])
        return fakes[-1]

    yield fake
    for each in fakes:
        each.release.set()  # before the workers close: they wait for their tasks


async def _poll(worker: WakingWorker, *job_ids: str) -> None:
    await worker.start_jobs([job_id.encode() for job_id in job_ids])
    await asyncio.sleep(0)  # the started tasks take their first step


async def _queue(redis: Redis, job_id: str) -> None:
    await redis.zadd(Keys("t").queue, {job_id: now_ms() - 1})


@contextlib.asynccontextmanager
async def _expiries(redis: Redis) -> AsyncIterator[PubSub]:
    """Redis's `expired` key events, while the block runs (the server is the session's own)."""
    setting = "notify-keyspace-events"
    before = (await redis.config_get(setting))[setting]
    await redis.config_set(setting, "Ex")
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe("__keyevent@0__:expired")
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        await redis.config_set(setting, before)


async def _expired(pubsub: PubSub, key: str) -> None:
    async with asyncio.timeout(5):
        async for message in pubsub.listen():
            if message["type"] == "message" and message["data"] == key.encode():
                return


async def _calls(redis: Redis, *commands: str) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in commands)


async def test_a_job_that_another_worker_runs_is_asked_about_once_not_at_every_poll(
    workers: Callable[[], WakingWorker],
    started: Callable[[WakingWorker], Started],
    redis_client: Redis,
) -> None:
    running, polling = workers(), workers()
    there, here = started(running), started(polling)
    await _queue(redis_client, JOB)
    await _poll(running, JOB)
    before = await _calls(redis_client, "zscore", "set")
    for _ in range(POLLS):
        await _poll(polling, JOB)
    assert await _calls(redis_client, "zscore", "set") - before == 2  # one ZSCORE, one SET
    assert (there.jobs, here.jobs) == ([JOB], [])


async def test_a_job_whose_holder_died_is_started_once_its_lock_lapses(
    workers: Callable[[], WakingWorker],
    started: Callable[[WakingWorker], Started],
    redis_client: Redis,
) -> None:
    worker = workers()
    fake = started(worker)
    await _queue(redis_client, JOB)
    lock = IN_PROGRESS_KEY_PREFIX + JOB
    async with _expiries(redis_client) as expiries:
        await redis_client.set(lock, b"1", px=300)  # a dead worker's: no lease beat renews it
        await _poll(worker, JOB)
        await _poll(worker, JOB)
        assert fake.jobs == []
        await _expired(expiries, lock)
    await _poll(worker, JOB)
    assert fake.jobs == [JOB]


async def test_a_job_that_left_the_queue_and_came_back_is_asked_about_at_once(
    workers: Callable[[], WakingWorker],
    started: Callable[[WakingWorker], Started],
    redis_client: Redis,
) -> None:
    worker = workers()
    fake = started(worker)
    await _queue(redis_client, JOB)
    lock = IN_PROGRESS_KEY_PREFIX + JOB
    await redis_client.set(lock, b"1", px=60_000)
    await _poll(worker, JOB)
    # It ended elsewhere (arq drops its lock and queue entry) while this worker polled...
    await redis_client.delete(lock)
    await redis_client.zrem(Keys("t").queue, JOB)
    await _poll(worker)
    # ...and the same id was queued again (a redriven delivery keeps its job id).
    await _queue(redis_client, JOB)
    await _poll(worker, JOB)
    assert fake.jobs == [JOB]
    assert worker.held == {}


async def test_a_job_found_held_before_a_redis_outage_is_asked_about_again_after_it(
    workers: Callable[[], WakingWorker],
    started: Callable[[WakingWorker], Started],
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = workers()
    fake = started(worker)
    await _queue(redis_client, JOB)
    lock = IN_PROGRESS_KEY_PREFIX + JOB
    await redis_client.set(lock, b"1", px=60_000)
    await _poll(worker, JOB)
    with monkeypatch.context() as outage:
        outage.setattr(worker.pool, "zrangebyscore", _unreachable)
        await worker._poll_iteration()
    assert worker.failed_polls == 1
    await redis_client.delete(lock)  # Redis came back without it (a lost write)
    await _poll(worker, JOB)
    assert fake.jobs == [JOB]


async def _unreachable(*args: object, **kwargs: object) -> NoReturn:
    raise RedisConnectionError("Redis is away")

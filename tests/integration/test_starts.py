"""A worker's job starts (start_jobs.lua): a started run job stays in arq's queue, hidden from
polls until its lock may lapse, and goes back to the score arq means when it is to run again;
other jobs are queued as arq keeps them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

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

RUN, DELIVERY = "exec_run", "whk_exec_run"


class Started:
    """Stands in for arq's `run_job`: records each start and runs until released."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, int]] = []
        self.release = asyncio.Event()

    async def __call__(self, job_id: str, score: int) -> None:
        self.jobs.append((job_id, score))
        await self.release.wait()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[WakingWorker]:
    worker = create_worker(settings, burst=True, handle_signals=False)
    yield worker
    await worker.close()


@pytest.fixture
def started(worker: WakingWorker, monkeypatch: pytest.MonkeyPatch) -> Iterator[Started]:
    fake = Started()
    monkeypatch.setattr(worker, "run_job", fake)
    yield fake
    fake.release.set()  # before the worker closes: it waits for its tasks


async def _start(worker: WakingWorker, *job_ids: str) -> None:
    await worker.start_jobs([job_id.encode() for job_id in job_ids])
    await asyncio.sleep(0)  # the started tasks take their first step


async def _due(redis: Redis) -> list[bytes]:
    due: list[bytes] = await redis.zrangebyscore(Keys("t").queue, "-inf", now_ms())
    return due


async def test_a_started_run_job_stays_queued_but_hidden_until_its_lock_may_lapse(
    worker: WakingWorker, started: Started, redis_client: Redis, settings: Settings
) -> None:
    queued_at = now_ms() - 1
    await redis_client.zadd(Keys("t").queue, {RUN: queued_at, DELIVERY: queued_at})
    before = now_ms()
    await _start(worker, RUN, DELIVERY)
    assert sorted(job for job, _ in started.jobs) == [RUN, DELIVERY]
    assert all(score == queued_at for _, score in started.jobs)  # arq's score, not the hidden one
    hidden = await redis_client.zscore(Keys("t").queue, RUN)
    assert hidden is not None
    assert hidden >= before + settings.lock_timeout_s * 1000
    assert await _due(redis_client) == [DELIVERY.encode()]  # a delivery is queued as arq keeps it


async def test_a_run_job_held_elsewhere_is_hidden_for_what_its_lock_has_left(
    worker: WakingWorker, started: Started, redis_client: Redis
) -> None:
    await redis_client.zadd(Keys("t").queue, {RUN: now_ms() - 1})
    await redis_client.set(IN_PROGRESS_KEY_PREFIX + RUN, b"1", px=5000)  # another worker's
    before = now_ms()
    await _start(worker, RUN)
    assert started.jobs == []
    hidden = await redis_client.zscore(Keys("t").queue, RUN)
    assert hidden is not None
    assert before < hidden <= now_ms() + 5000
    assert await _due(redis_client) == []


async def test_a_run_job_running_here_is_hidden_again_not_started_again(
    worker: WakingWorker, started: Started, redis_client: Redis
) -> None:
    await redis_client.zadd(Keys("t").queue, {RUN: now_ms() - 1})
    await _start(worker, RUN)
    # Its hidden score passed while it ran: its lock, renewed by the lease beats, did not.
    await redis_client.zadd(Keys("t").queue, {RUN: now_ms() - 1})
    await _start(worker, RUN)
    assert [job for job, _ in started.jobs] == [RUN]
    assert await _due(redis_client) == []


async def test_a_run_job_retried_by_arq_is_queued_again_at_the_score_arq_means(
    worker: WakingWorker, started: Started, redis_client: Redis
) -> None:
    queued_at = now_ms() - 1
    await redis_client.zadd(Keys("t").queue, {RUN: queued_at})
    await _start(worker, RUN)
    # arq's Retry(defer): its score moves by the defer plus the time since it was due.
    await worker.finish_job(RUN, False, None, 0, False, 1500, None)
    assert await redis_client.zscore(Keys("t").queue, RUN) == queued_at + 1500
    assert not await redis_client.exists(IN_PROGRESS_KEY_PREFIX + RUN)


async def test_a_run_job_handed_back_while_it_ran_is_not_queued_again_by_its_end(
    worker: WakingWorker, started: Started, redis_client: Redis
) -> None:
    await redis_client.zadd(Keys("t").queue, {RUN: now_ms() - 1})
    await _start(worker, RUN)
    await redis_client.zrem(Keys("t").queue, RUN)  # requeue.lua: a fresh job id took its place
    await worker.finish_job(RUN, False, None, 0, False, None, None)  # cancelled: run again
    assert await redis_client.zscore(Keys("t").queue, RUN) is None

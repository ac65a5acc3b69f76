"""Filling queues fast, and holding them until the workers are ready.

Ours are filled with `execution.submit`, the very function behind `POST /execute/async` (the
same validation and the same Lua script), minus HTTP: the drain figures are about the workers,
and the fill has to be quick. The baseline's are filled with arq's own `enqueue_job`.

A drain is timed from the moment its whole queue becomes due: jobs are parked (scored an hour
ahead) while the workers start, then released with one ZADD, so that no worker starts early
and process start-up is never part of a figure.
"""

from __future__ import annotations

import asyncio
import datetime
import time

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity
from agentfield_arq.core.execution import submit
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.kernel.codec import rfc3339
from agentfield_arq.kernel.models import ExecuteRequest
from agentfield_arq.kernel.status import Status
from bench.baseline_arq import FUNCTION
from bench.harness import BASELINE_QUEUE, TARGET, Harness

CHUNK = 100
PARK_S = 3600
SETTLE_TIMEOUT_S = 1800.0
INPUT = {"quarter": "Q3", "n": 1}
RESULT = b'{"ok":true}'


def now_ms() -> int:
    """Unix time in milliseconds (arq's clock)."""
    return time.time_ns() // 1_000_000


async def fill_ours(h: Harness, count: int, owner: Identity = ANONYMOUS_ADMIN) -> list[str]:
    """Queue `count` executions of the bench target, submitted by `owner`; returns their ids."""
    client = connect(h.url)
    store = ExecutionStore(client, h.settings)
    request = ExecuteRequest(input=INPUT)
    ids: list[str] = []
    try:
        for start in range(0, count, CHUNK):
            size = min(CHUNK, count - start)
            accepted = await asyncio.gather(
                *(submit(store, TARGET, request, {}, owner=owner) for _ in range(size))
            )
            ids += [a.execution_id for a in accepted]
    finally:
        await client.aclose()
    return ids


async def succeed_ours(h: Harness, ids: list[str]) -> None:
    """End queued executions `succeeded` through the very scripts a worker runs on them
    (claim.lua, then finish.lua with the agent's result), in-process and without the agent call:
    the records, documents and indexes a worker leaves, in a fraction of a real drain's time."""
    client = connect(h.url)
    store = ExecutionStore(client, h.settings)
    try:
        for start in range(0, len(ids), CHUNK):
            await asyncio.gather(*(_succeed(store, i) for i in ids[start : start + CHUNK]))
    finally:
        await client.aclose()


async def _succeed(store: ExecutionStore, execution_id: str) -> None:
    at = now_ms()
    claim = await store.claim(execution_id, rfc3339(at), at)
    attempt = claim.fields.get("attempt")
    done = now_ms()
    await store.finish(
        execution_id, Status.SUCCEEDED, rfc3339(done), done, result=RESULT, attempt=attempt
    )


async def fill_baseline(h: Harness, count: int) -> list[str]:
    """Queue `count` baseline jobs with arq's enqueue_job, already parked; returns job ids."""
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(h.url))
    park = datetime.timedelta(seconds=PARK_S)
    ids: list[str] = []
    try:
        for start in range(0, count, CHUNK):
            size = min(CHUNK, count - start)
            jobs = await asyncio.gather(
                *(pool.enqueue_job(FUNCTION, n, _queue_name=BASELINE_QUEUE, _defer_by=park)
                  for n in range(start, start + size))
            )  # fmt: skip
            ids += [job.job_id for job in jobs if job is not None]
    finally:
        await pool.aclose()
    return ids


async def rescore(h: Harness, queue: str, ids: list[str], score_ms: int) -> None:
    """Set the due time of queued jobs (parking or releasing them): one ZADD per 10,000 jobs,
    pipelined (nothing but ZADD, so that MONITOR can tell it from the system's commands)."""
    client: Redis = connect(h.url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for start in range(0, len(ids), 10_000):
                pipe.zadd(queue, dict.fromkeys(ids[start : start + 10_000], score_ms), xx=True)
            await pipe.execute()
    finally:
        await client.aclose()


async def park(h: Harness, queue: str, ids: list[str]) -> None:
    """Hold the jobs back an hour."""
    await rescore(h, queue, ids, now_ms() + PARK_S * 1000)


async def release(h: Harness, queue: str, ids: list[str]) -> None:
    """Make every job due now."""
    await rescore(h, queue, ids, now_ms())


async def settle(h: Harness, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Wait until none of our executions is left non-terminal (finish.lua drops each from the
    deadlines set as it ends)."""
    client = connect(h.url)
    deadline = time.monotonic() + timeout_s
    try:
        while await client.zcard(h.keys.deadlines):
            if time.monotonic() > deadline:
                raise RuntimeError(f"executions did not settle within {timeout_s:.0f}s")
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()

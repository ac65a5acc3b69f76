"""End-to-end latency when idle: one execution at a time, from enqueue to its terminal state.

Ours: `POST /execute/{target}` (the sync route: the API answers when the execution is terminal,
woken by the lifecycle stream, so the client does not poll). Baseline: arq's `enqueue_job` then
`job.result()`, polling the result every `RESULT_POLL_S` (arq's default is 0.5 s; we give the
baseline a much finer one). Both run with the same worker count, poll delay and inline agent.

Requests are spaced by a random pause, so that they do not fall into step with the workers'
poll loop (which would make every pickup wait either ~0 or a whole poll delay).
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime

import httpx
import msgspec
from arq.connections import RedisSettings, create_pool

from agentfield_arq.core.connection import connect
from bench.baseline_arq import FUNCTION
from bench.fill import INPUT
from bench.harness import BASELINE_QUEUE, TARGET, Harness
from bench.load import AUTH
from bench.plan import Plan
from bench.stats import Figure, Target, figure, percentile

RESULT_POLL_S = 0.002
WARMUP = 5
_rng = random.Random(5)


async def _pause(h: Harness) -> None:
    await asyncio.sleep(_rng.uniform(0.0, 2 * h.settings.worker_poll_delay_s))


async def run_ours(h: Harness, count: int, api_port: int) -> tuple[list[float], list[float]]:
    """Latencies (ms) of `count` sync executions, and their queue waits (created -> started)."""
    url = f"http://127.0.0.1:{api_port}/api/v1/execute/{TARGET}"
    latencies: list[float] = []
    ids: list[str] = []
    async with httpx.AsyncClient(timeout=30.0, headers=AUTH) as http:
        for n in range(WARMUP + count):
            await _pause(h)
            started = time.perf_counter()
            answer = await http.post(url, json={"input": INPUT})
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200 or answer.json()["status"] != "succeeded":
                raise RuntimeError(f"sync execute failed: {answer.status_code} {answer.text}")
            if n >= WARMUP:
                latencies.append(elapsed)
                ids.append(answer.json()["execution_id"])
    return latencies, await _queue_waits(h, ids)


async def _queue_waits(h: Harness, ids: list[str]) -> list[float]:
    client = connect(h.url)
    try:
        docs = await client.mget([h.keys.status_doc(i) for i in ids])
    finally:
        await client.aclose()
    waits = []
    for raw in docs:
        doc = msgspec.json.decode(raw or b"{}")
        created = datetime.fromisoformat(doc["created_at"])
        started = datetime.fromisoformat(doc["started_at"])
        waits.append((started - created).total_seconds() * 1000)
    return waits


async def run_baseline(h: Harness, count: int) -> list[float]:
    """Latencies (ms) of `count` bare arq jobs, enqueue -> result."""
    pool = await create_pool(RedisSettings.from_dsn(h.url))
    latencies: list[float] = []
    try:
        for n in range(WARMUP + count):
            await _pause(h)
            started = time.perf_counter()
            job = await pool.enqueue_job(FUNCTION, n, _queue_name=BASELINE_QUEUE)
            assert job is not None
            await job.result(timeout=30, poll_delay=RESULT_POLL_S)
            if n >= WARMUP:
                latencies.append((time.perf_counter() - started) * 1000)
    finally:
        await pool.aclose()
    return latencies


async def measure(h: Harness, plan: Plan, agent_url: str) -> list[Figure]:
    """Idle end-to-end latency, ours and the baseline's, `plan.runs` times each."""
    h.flush()
    await h.register_node(agent_url)
    api_port = await h.start_api()
    workers = await h.start_workers(plan.drain_workers)
    baseline = await h.start_baseline_workers(plan.drain_workers, agent_url)
    ours_p50, ours_p99, waits, base_p50, base_p99 = [], [], [], [], []
    try:
        for _ in range(plan.runs):
            latencies, queue_waits = await run_ours(h, plan.e2e_count, api_port)
            ours_p50.append(percentile(latencies, 0.5))
            ours_p99.append(percentile(latencies, 0.99))
            waits.append(percentile(queue_waits, 0.5))
            base = await run_baseline(h, plan.e2e_count)
            base_p50.append(percentile(base, 0.5))
            base_p99.append(percentile(base, 0.99))
    finally:
        h.stop("api", *workers, *baseline)
    poll_ms = h.settings.worker_poll_delay_s * 1000
    return [
        figure(
            "e2e_p50", "end-to-end latency p50, idle", "ms", ours_p50, base_p50,
            target=Target(op="<=", limit=2.0, text="<= 2 x bare arq"),
            note=f"{plan.e2e_count} sequential, worker poll delay {poll_ms:g} ms",
        ),
        figure("e2e_p99", "end-to-end latency p99, idle", "ms", ours_p99, base_p99),
        figure(
            "e2e_queue_wait", "  of which queue wait p50 (created -> started)", "ms", waits,
            note="how much of the latency is the worker noticing the job",
        ),
    ]  # fmt: skip

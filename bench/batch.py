"""Batch status of 1000 ids over HTTP, end to end, against one raw MGET of the same status
documents from Python (no HTTP). All are timed one request at a time, interleaved, on the same
Redis holding the same settled executions.

The target compares the server's path with a lean HTTP client (`load.KeepAlive`) to an MGET with
redis-py as anyone would call it (`redis.asyncio.Redis.from_url`). Two more rows show what is
not ours to change: the same request through httpx, and the same MGET with the hiredis command
packer our own processes use (agentfield_arq/core/connection.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
import redis.asyncio

from agentfield_arq.core.connection import connect
from bench import fill
from bench.harness import Harness
from bench.load import JSON_AUTH, KeepAlive
from bench.plan import Plan
from bench.stats import Figure, Target, figure, percentile

PATH = "/api/v1/executions/batch-status"


async def _ms(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def _settled(h: Harness, plan: Plan, agent_url: str) -> list[str]:
    h.flush()
    await h.register_node(agent_url)
    workers = await h.start_workers(plan.drain_workers)
    try:
        ids = await fill.fill_ours(h, plan.batch_ids)
        await fill.settle(h)
    finally:
        h.stop(*workers)
    return ids


async def measure(h: Harness, plan: Plan, agent_url: str) -> list[Figure]:
    """Per run, the median of `plan.batch_repeats` timings of each way of reading."""
    ids = await _settled(h, plan, agent_url)
    api_port = await h.start_api()
    body = msgspec.json.encode({"execution_ids": ids})
    keys = [h.keys.status_doc(i) for i in ids]
    plain = redis.asyncio.Redis.from_url(h.url)
    packed = connect(h.url)
    samples: dict[str, list[float]] = {"lean": [], "httpx": [], "plain": [], "packed": []}

    async def lean_post() -> None:
        status, _ = await lean.post(PATH, body)
        if status != 200:
            raise RuntimeError(f"batch-status answered {status}")

    try:
        async with KeepAlive(api_port) as lean, httpx.AsyncClient(headers=JSON_AUTH) as http:
            url = f"http://127.0.0.1:{api_port}{PATH}"
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "lean": lean_post,
                "httpx": lambda: http.post(url, content=body),
                "plain": lambda: plain.mget(keys),
                "packed": lambda: packed.mget(keys),
            }
            status, answer = await lean.post(PATH, body)
            if status != 200 or len(msgspec.json.decode(answer)) != len(ids):
                raise RuntimeError(f"batch-status answered {status}: {answer[:200]!r}")
            for _ in range(plan.runs):
                timings: dict[str, list[float]] = {name: [] for name in calls}
                for _ in range(plan.batch_repeats):
                    for name, call in calls.items():
                        timings[name].append(await _ms(call))
                for name, values in timings.items():
                    samples[name].append(percentile(values, 0.5))
    finally:
        await plain.aclose()
        await packed.aclose()
        h.stop("api")
    n = len(ids)
    return [
        figure(
            "batch_status", f"batch status, {n:,} ids over HTTP", "ms",
            samples["lean"], samples["plain"], ratio_of="HTTP / raw MGET",
            target=Target(op="<=", limit=2.0, text="<= 2 x one raw MGET"),
            note=f"median of {plan.batch_repeats} per run; lean keep-alive HTTP client; "
            "raw MGET = redis-py asyncio client",
        ),
        figure(
            "batch_status_httpx", "  the same through httpx", "ms", samples["httpx"],
            samples["plain"], ratio_of="httpx / raw MGET", note="client cost included",
        ),
        figure(
            "batch_mget_packed", f"  raw MGET of {n:,}, hiredis-packed", "ms", samples["packed"],
            samples["plain"], ratio_of="packed / redis-py MGET",
            note="the packer our processes use (agentfield_arq/core/connection.py)",
        ),
    ]  # fmt: skip

"""Batch status of 1000 ids over HTTP, end to end, against one raw MGET of the same status
documents from Python (no HTTP). All are timed one request at a time, interleaved, on the same
Redis holding the same settled executions, which a caller's key submitted.

The target compares the server's path with a lean HTTP client (`load.KeepAlive`), asked with the
admin key, to an MGET with redis-py as anyone would call it (`redis.asyncio.Redis.from_url`). The
same request with the submitting caller's key (whose ownership of each id is checked) has a row
of its own. Two more rows show what is not ours to change: the admin's request through httpx,
and the same MGET with the hiredis command packer our own processes use
(agentfield_arq/core/connection.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
import redis.asyncio

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import Identity, KeyStore, Role
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


async def _settled(h: Harness, plan: Plan, agent_url: str) -> tuple[list[str], str]:
    """The settled executions, submitted by a caller's key, and that key."""
    h.flush()
    await h.register_node(agent_url)
    client = connect(h.url)
    try:
        record, key = await KeyStore(client, h.settings).create(Role.CALLER, name="bench")
    finally:
        await client.aclose()
    workers = await h.start_workers(plan.drain_workers)
    try:
        owner = Identity(key_id=record.id, role=Role.CALLER)
        ids = await fill.fill_ours(h, plan.batch_ids, owner=owner)
        await fill.settle(h)
    finally:
        h.stop(*workers)
    return ids, key


async def measure(h: Harness, plan: Plan, agent_url: str) -> list[Figure]:
    """Per run, the median of `plan.batch_repeats` timings of each way of reading."""
    ids, key = await _settled(h, plan, agent_url)
    api_port = await h.start_api()
    body = msgspec.json.encode({"execution_ids": ids})
    keys = [h.keys.status_doc(i) for i in ids]
    plain = redis.asyncio.Redis.from_url(h.url)
    packed = connect(h.url)
    samples: dict[str, list[float]] = {
        "lean": [], "caller": [], "httpx": [], "plain": [], "packed": []
    }  # fmt: skip

    async def checked(client: KeepAlive) -> None:
        """One request, which must answer every id with its document."""
        status, answer = await client.post(PATH, body)
        found = msgspec.json.decode(answer) if status == 200 else {}
        if len(found) != len(ids) or any(d["status"] == "not_found" for d in found.values()):
            raise RuntimeError(f"batch-status answered {status}: {answer[:200]!r}")

    async def post(client: KeepAlive) -> None:
        status, _ = await client.post(PATH, body)
        if status != 200:
            raise RuntimeError(f"batch-status answered {status}")

    try:
        async with (
            KeepAlive(api_port) as lean,
            KeepAlive(api_port, key) as caller,
            httpx.AsyncClient(headers=JSON_AUTH) as http,
        ):
            url = f"http://127.0.0.1:{api_port}{PATH}"
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "lean": lambda: post(lean),
                "caller": lambda: post(caller),
                "httpx": lambda: http.post(url, content=body),
                "plain": lambda: plain.mget(keys),
                "packed": lambda: packed.mget(keys),
            }
            await checked(lean)
            await checked(caller)
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
            "batch_status_caller", "  the same, a caller's key (ownership checked)", "ms",
            samples["caller"], samples["plain"], ratio_of="HTTP / raw MGET",
            note="the key that submitted all of them",
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

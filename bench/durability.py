"""What AGENTFIELD_ARQ_REDIS_WAIT_REPLICAS=1 costs an enqueue: the in-process app (httpx over
ASGI, no sockets between client and app) against a primary with one replica, both our own
valkey-servers on free loopback ports, timed with and without the setting, alternating, in
the same run.

    python -m bench.durability [--runs 7] [--requests 2000] [--concurrency 1]

Prints one JSON object: per setting, the median over runs of each run's median and p99 latency
(microseconds) and throughput; the ratios; and the machine's load average (1, 5, 15 min)
before and after, since a shared machine's load moves both settings' figures. Touches nothing
but the servers it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis

from agentfield_arq.api.app import create_app
from agentfield_arq.core.settings import Settings, from_env
from agentfield_arq.ops.embedded import EmbeddedRedis
from bench.stats import percentile

ADMIN_KEY = "afk_bench-durability-admin-key"
NODE = {"id": "bench", "base_url": "http://127.0.0.1:9", "reasoners": [{"id": "echo"}]}
BODY = {"input": {"quarter": "Q3", "n": 1}}
PATH = "/api/v1/execute/async/bench.echo"
SYNC_TIMEOUT_S = 15.0


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app for `settings`, its lifespan entered, as an httpx client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=headers
        ) as client:
            yield client


async def one_run(settings: Settings, requests: int, concurrency: int) -> dict[str, float]:
    """`requests` enqueues from `concurrency` callers: latency median and p99 (us), per second."""
    async with app_client(settings) as api:
        answer = await api.post("/api/v1/nodes/register", json=NODE)
        assert answer.status_code == 201, answer.text
        latencies: list[float] = []

        async def caller(count: int) -> None:
            for _ in range(count):
                began = time.perf_counter()
                answer = await api.post(PATH, json=BODY)
                latencies.append(time.perf_counter() - began)
                assert answer.status_code == 202, answer.text

        began = time.perf_counter()
        await asyncio.gather(*(caller(requests // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "p50_us": statistics.median(latencies) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
        "per_s": len(latencies) / elapsed,
    }


def replicate(primary: EmbeddedRedis, replica: EmbeddedRedis) -> None:
    """Make `replica` follow `primary` and wait until it is in sync."""
    client = redis.Redis(port=replica.port)
    try:
        client.replicaof("127.0.0.1", primary.port)
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
    finally:
        client.close()


async def measure(url: str, runs: int, requests: int, concurrency: int) -> dict[str, Any]:
    base = from_env({}, redis_url=url, key_prefix="durability", admin_key=ADMIN_KEY)
    variants = {
        "wait_0": base,
        "wait_1": msgspec.structs.replace(base, redis_wait_replicas=1),
    }
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    flusher = redis.Redis.from_url(url)
    try:
        for run in range(runs):
            order = list(variants) if run % 2 == 0 else list(reversed(variants))
            for name in order:
                flusher.flushall()
                figures[name].append(await one_run(variants[name], requests, concurrency))
    finally:
        flusher.close()
    summary = {
        name: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for name, rows in figures.items()
    }
    return {
        "runs": runs,
        "requests": requests,
        "concurrency": concurrency,
        **summary,
        "p50_ratio": summary["wait_1"]["p50_us"] / summary["wait_0"]["p50_us"],
        "throughput_ratio": summary["wait_1"]["per_s"] / summary["wait_0"]["per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        primary = EmbeddedRedis(Path(folder) / "primary", appendonly=False)
        replica = EmbeddedRedis(Path(folder) / "replica", appendonly=False)
        try:
            url = primary.start()
            replica.start()
            replicate(primary, replica)
            result = asyncio.run(measure(url, args.runs, args.requests, args.concurrency))
        finally:
            replica.stop()
            primary.stop()
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

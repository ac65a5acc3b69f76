"""Async enqueue: throughput and latency of `POST /execute/async/{target}` under load, against
the bare Starlette baseline, each run back to back on the same (flushed) Redis.

No worker runs meanwhile, so the figure is the front door alone: HTTP, validation, and the one
Lua script that makes the execution durable and queues its job. The requests carry the run's
admin key, compared in memory; a third load in each run sends a caller key stored in Redis, as
most callers' are: its lookup (and the count against its rate) is one more round trip.
"""

from __future__ import annotations

from typing import Any

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import KeyStore, Role
from bench import load
from bench.baseline_starlette import QUEUE as BASELINE_ZSET
from bench.harness import TARGET, Harness
from bench.plan import Plan
from bench.stats import Figure, Target, figure
from bench.usage import since, snapshot

BODY = b'{"input":{"quarter":"Q3","n":1}}'
OURS_PATH = f"/api/v1/execute/async/{TARGET}"
BASELINE_PATH = f"/enqueue/{TARGET}"
CALLER_KEY = "afk_bench-caller-key-stored-in-redis"


async def measure(h: Harness, plan: Plan, agent_url: str) -> list[Figure]:
    """Enqueue throughput and latency, ours and the baseline's, plus the generator's ceiling."""
    agent_port = int(agent_url.rsplit(":", 1)[1])
    ceiling = await _load(plan, agent_port, "/reasoners/echo", None, "")
    api_port = await h.start_api()
    baseline_port = await h.start_baseline_api()
    ours: list[dict[str, Any]] = []
    base: list[dict[str, Any]] = []
    stored: list[dict[str, Any]] = []
    try:
        for run in range(plan.runs):
            # Alternate who goes first, so that neither always gets the warmer machine.
            for who in ("ours", "stored", "base") if run % 2 == 0 else ("base", "stored", "ours"):
                h.flush()
                await h.register_node(agent_url)
                if who == "stored":
                    await _store_caller_key(h)
                    stored.append(
                        await _load(plan, api_port, OURS_PATH, h, h.keys.queue, CALLER_KEY)
                    )
                elif who == "ours":
                    spy = None
                    if plan.profile and run == 0:
                        spy = await h.profile("api", plan.enqueue_s, "api-enqueue")
                    ours.append(await _load(plan, api_port, OURS_PATH, h, h.keys.queue))
                    if spy is not None:
                        await spy.wait()
                else:
                    base.append(await _load(plan, baseline_port, BASELINE_PATH, h, BASELINE_ZSET))
    finally:
        h.stop("api", "baseline-api")
    return _figures(plan, ours, base, stored, ceiling)


async def _store_caller_key(h: Harness) -> None:
    client = connect(h.url)
    try:
        await KeyStore(client, h.settings).store(CALLER_KEY, Role.CALLER, "key_bench")
    finally:
        await client.aclose()


async def _load(
    plan: Plan,
    port: int,
    path: str,
    h: Harness | None,
    queue: str,
    key: str = load.ADMIN_KEY,
) -> dict[str, Any]:
    """One load run; with a harness, also Redis' CPU per request (the queue's length after the
    run counts every request, warm-up included, as the CPU does)."""
    before = snapshot(h.redis) if h else None
    result = await load.measure(
        port, path, BODY,
        connections=plan.connections, duration_s=plan.enqueue_s, warmup_s=plan.warmup_s, key=key,
    )  # fmt: skip
    if result["ok"] != result["requests"] or result["failed_connections"]:
        raise RuntimeError(f"load on {path} had errors: {result}")
    if h and before:
        usage = since(before, snapshot(h.redis))
        result["redis_cpu_us"] = usage.cpu_s * 1e6 / max(1, int(h.redis.zcard(queue)))
        result["redis_commands"] = usage.commands / max(1, int(h.redis.zcard(queue)))
    return result


def _figures(
    plan: Plan,
    ours: list[dict[str, Any]],
    base: list[dict[str, Any]],
    stored: list[dict[str, Any]],
    ceiling: dict[str, Any],
) -> list[Figure]:
    def col(rows: list[dict[str, Any]], name: str) -> list[float]:
        return [float(r[name]) for r in rows]

    how = f"{plan.connections} connections, {plan.enqueue_s:g} s"
    return [
        figure(
            "enqueue_rps", "async enqueue throughput", "req/s",
            col(ours, "rps"), col(base, "rps"),
            target=Target(op=">=", limit=0.9, text=">= 0.9 x bare Starlette"),
            note=f"{how}; load generator ceiling {ceiling['rps']:,.0f} req/s",
        ),
        figure(
            "enqueue_rps_stored_key", "  the same with a caller key stored in Redis", "req/s",
            col(stored, "rps"), col(base, "rps"),
            note=f"{how}; the key looked up and counted against its rate in Redis",
        ),
        figure("enqueue_p50", "enqueue latency p50", "ms", col(ours, "p50_ms"),
               col(base, "p50_ms"), note=how),
        figure(
            "enqueue_p99", "enqueue latency p99", "ms", col(ours, "p99_ms"), col(base, "p99_ms"),
            ratio=[r["p99_ms"] / r["p50_ms"] for r in ours], ratio_of="ours p99 / ours p50",
            target=Target(op="<=", limit=5.0, text="p99 <= 5 x p50"), note=how,
        ),
        figure("enqueue_redis_cpu", "Redis CPU per enqueue", "µs", col(ours, "redis_cpu_us"),
               col(base, "redis_cpu_us"), note="main thread, INFO cpu delta / requests"),
        figure("loadgen_ceiling", "load generator ceiling", "req/s", [ceiling["rps"]],
               note="the same generator against a trivially fast endpoint"),
    ]  # fmt: skip

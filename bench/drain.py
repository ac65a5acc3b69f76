"""Drain throughput and its scaling with worker processes: ours against bare arq jobs.

One run queues `drain_count` jobs, parks them, starts the workers, releases the whole queue at
once and times how long the workers take to settle every one of them (polled every 10 ms).
Redis' own counters over the same window give the commands and CPU per execution.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import msgspec

from agentfield_arq.core.connection import connect
from bench import fill
from bench.baseline_arq import DONE_KEY
from bench.harness import BASELINE_QUEUE, Harness
from bench.plan import Plan
from bench.stats import Figure, Target, figure
from bench.usage import Usage, since, snapshot

POLL_S = 0.01
DRAIN_TIMEOUT_S = 600.0


class Drain(msgspec.Struct, kw_only=True):
    """One timed drain."""

    kind: str
    workers: int
    count: int
    seconds: float
    usage: Usage
    # CPU seconds over the drain: "workers" (all of them), "redis", "agent".
    cpu_s: dict[str, float] = {}
    # Each worker's peak resident set size (VmHWM) at the end of the drain, kB.
    peak_rss_kb: list[int] = []

    @property
    def rate(self) -> float:
        """Executions settled per second."""
        return self.count / self.seconds

    def cpu_us(self, part: str) -> float:
        """CPU microseconds per execution of one part of the system."""
        return self.cpu_s.get(part, 0.0) * 1e6 / self.count

    @property
    def busy(self) -> float:
        """Share of the machine's CPU the system used during the drain (0..1)."""
        return sum(self.cpu_s.values()) / self.seconds / (os.cpu_count() or 1)


async def run_ours(
    h: Harness, workers: int, count: int, agent_url: str, profile: bool = False, kind: str = "ours"
) -> Drain:
    """Drain `count` of our executions with `workers` worker processes (sampling the first
    with py-spy if asked); `kind` labels the drain."""
    h.flush()
    await h.register_node(agent_url)
    ids = await fill.fill_ours(h, count)
    await fill.park(h, h.keys.queue, ids)
    names = await h.start_workers(workers)
    client = connect(h.url)

    async def remaining() -> int:
        # finish.lua drops an execution from the deadlines set when it becomes terminal.
        pending: int = await client.zcard(h.keys.deadlines)
        return pending

    label = f"worker-{'drain' if kind == 'ours' else kind}-{workers}" if profile else ""
    try:
        drain = await _timed(h, kind, names, ids, h.keys.queue, remaining, label)
        drain.peak_rss_kb = [h.rss_kb(name, "VmHWM") for name in names]
        docs = await client.mget([h.keys.status_doc(i) for i in ids])
    finally:
        h.stop(*names)
        await client.aclose()
    settled = sum(1 for doc in docs if doc and b'"status":"succeeded"' in doc)
    if settled != count:
        raise RuntimeError(f"only {settled} of {count} executions succeeded")
    return drain


async def run_baseline(h: Harness, workers: int, count: int, agent_url: str) -> Drain:
    """Drain `count` bare arq jobs with `workers` baseline worker processes."""
    h.flush()
    ids = await fill.fill_baseline(h, count)
    names = await h.start_baseline_workers(workers, agent_url)
    client = connect(h.url)

    async def remaining() -> int:
        done: int = await client.hlen(DONE_KEY)  # type: ignore[misc]  # redis-py's async stubs
        return count - done

    try:
        return await _timed(h, "baseline", names, ids, BASELINE_QUEUE, remaining)
    finally:
        h.stop(*names)
        await client.aclose()


async def _timed(
    h: Harness,
    kind: str,
    workers: list[str],
    ids: list[str],
    queue: str,
    remaining: Callable[[], Awaitable[int]],
    profile_label: str = "",
) -> Drain:
    parts = {"workers": workers, "redis": ["redis"], "agent": ["agent"]}

    def cpu() -> dict[str, float]:
        return {part: sum(h.cpu_s(n) for n in names) for part, names in parts.items()}

    cpu_before = cpu()
    before = snapshot(h.redis)
    started = time.perf_counter()
    await fill.release(h, queue, ids)
    spy = await h.profile("worker-1", 5, profile_label) if profile_label else None
    deadline = started + DRAIN_TIMEOUT_S
    while await remaining() > 0:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{kind} drain did not finish in {DRAIN_TIMEOUT_S:.0f}s")
        await asyncio.sleep(POLL_S)
    seconds = time.perf_counter() - started
    usage = since(before, snapshot(h.redis))
    cpu_s = {part: after - cpu_before[part] for part, after in cpu().items()}
    if spy is not None:
        await spy.wait()
    return Drain(
        kind=kind, workers=len(workers), count=len(ids), seconds=seconds, usage=usage, cpu_s=cpu_s
    )


async def measure(h: Harness, plan: Plan, agent_url: str) -> tuple[list[Figure], list[Drain]]:
    """Drain runs for every worker count of the scaling plan (the drain figure is at
    `plan.drain_workers`), ours and the baseline's alternating, back to back."""
    drains: list[Drain] = []
    counts = sorted({*plan.scaling, plan.drain_workers})
    for workers in counts:
        for run in range(plan.runs):
            profile = plan.profile and run == 0 and workers == plan.drain_workers
            ours = run_ours(h, workers, plan.drain_count, agent_url, profile)
            base = run_baseline(h, workers, plan.drain_count, agent_url)
            for one in (ours, base) if run % 2 == 0 else (base, ours):
                drains.append(await one)
    return _figures(plan, drains), drains


def _figures(plan: Plan, drains: list[Drain]) -> list[Figure]:
    def of(kind: str, workers: int) -> list[Drain]:
        return [d for d in drains if d.kind == kind and d.workers == workers]

    def rates(kind: str, workers: int) -> list[float]:
        return [d.rate for d in of(kind, workers)]

    def busy(workers: int) -> str:
        shares = sorted(d.busy for d in of("ours", workers))
        return f"machine CPU {shares[len(shares) // 2]:.0%} busy (ours)" if shares else ""

    n = plan.drain_workers
    figures = [
        figure(
            "drain_rps",
            f"drain throughput, {n} workers",
            "exec/s",
            rates("ours", n),
            rates("baseline", n),
            target=Target(op=">=", limit=0.6, text=">= 0.6 x bare arq"),
            note=f"{plan.drain_count:,} queued, inline agent; {busy(n)}",
        ),
        figure(
            "run_worker_cpu",
            "worker CPU per execution",
            "µs",
            [d.cpu_us("workers") for d in of("ours", n)],
            [d.cpu_us("workers") for d in of("baseline", n)],
            note="all worker processes' CPU time during the drain / executions",
        ),
        figure(
            "run_redis_cpu",
            "Redis CPU per execution run",
            "µs",
            [d.usage.cpu_s * 1e6 / d.count for d in of("ours", n)],
            [d.usage.cpu_s * 1e6 / d.count for d in of("baseline", n)],
            note="main thread, INFO cpu delta / executions, during the drain",
        ),
    ]
    for workers in plan.scaling:
        if workers != n:
            figures.append(
                figure(
                    f"scaling_{workers}",
                    f"drain throughput, {workers} worker(s)",
                    "exec/s",
                    rates("ours", workers),
                    rates("baseline", workers),
                    note=busy(workers),
                )
            )
    return figures  # fmt: skip

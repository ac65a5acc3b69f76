"""Memory: Redis bytes per retained execution, and worker RSS as executions pile up.

Executions are queued with the fast path (`execution.submit` without HTTP, see fill.py) and run
by real worker processes against the inline agent. At each checkpoint (1,000 ... 100,000
executions) every execution so far is settled and retained; we read Redis' `used_memory` and
each worker's RSS. Bytes per execution are the memory deltas between checkpoints over the
executions added; the first segment also carries the growth of the capped lifecycle stream.

The worker's RSS is compared from the first checkpoint at which it has run at least five times
its slots (`worker_concurrency`, 2,000 by default): its connection pools and buffers grow to
what its slots use at once, which 1,000 executions (fewer than its slots) never reach. What
would still grow after that is what a leak is. The comparison from 1,000 is shown too.
"""

from __future__ import annotations

import itertools

import msgspec

from bench import fill
from bench.harness import Harness
from bench.plan import Plan
from bench.stats import Figure, Target, figure

# The worker's RSS is compared from the first checkpoint past this many times its slots.
WARM_SLOTS = 5


class Checkpoint(msgspec.Struct, kw_only=True):
    """State after `executions` settled executions."""

    executions: int
    used_memory: int
    rss_kb: list[int]


def checkpoints(plan: Plan) -> list[int]:
    """Where to measure: the small count, a few points between, the large count."""
    large = plan.memory_large
    points = {plan.memory_small, large // 10, large // 4, large // 2, large}
    return sorted(p for p in points if p >= plan.memory_small)


async def run(h: Harness, plan: Plan, agent_url: str) -> tuple[list[Checkpoint], dict[str, int]]:
    """Queue and run executions up to each checkpoint; the checkpoints and key sizes."""
    h.flush()
    await h.register_node(agent_url)
    workers = await h.start_workers(plan.memory_workers)
    done = 0
    points: list[Checkpoint] = []
    ids: list[str] = []
    try:
        for target in checkpoints(plan):
            ids = await fill.fill_ours(h, target - done)
            await fill.settle(h)
            done = target
            used = int(h.redis.info("memory")["used_memory"])
            points.append(Checkpoint(executions=done, used_memory=used,
                                     rss_kb=[h.rss_kb(w) for w in workers]))  # fmt: skip
    finally:
        h.stop(*workers)
    sample = ids[-1]
    sizes = {
        "exec hash": int(h.redis.memory_usage(h.keys.execution(sample)) or 0),
        "status doc": int(h.redis.memory_usage(h.keys.status_doc(sample)) or 0),
    }
    return points, sizes


async def measure(h: Harness, plan: Plan, agent_url: str) -> tuple[list[Figure], list[Checkpoint]]:
    """Redis bytes per execution (per segment) and worker RSS growth (per worker)."""
    points, sizes = await run(h, plan, agent_url)
    per_execution = [
        (b.used_memory - a.used_memory) / (b.executions - a.executions) / 1024
        for a, b in itertools.pairwise(points)
    ]
    first, last = points[0], points[-1]
    warm = next(p for p in points if p.executions >= WARM_SLOTS * h.settings.worker_concurrency
                or p is last)  # fmt: skip
    keys = ", ".join(f"{name} {size} B" for name, size in sizes.items())
    return [
        figure(
            "redis_kb_per_execution", "Redis memory per retained execution", "KB",
            per_execution, ratio=per_execution, ratio_of="KB",
            target=Target(op="<=", limit=1.5, text="<= 1.5 KB"),
            note=f"used_memory delta per execution between checkpoints; MEMORY USAGE: {keys}",
        ),
        figure(
            "worker_rss", f"worker RSS after {last.executions:,} vs {warm.executions:,}", "MB",
            [kb / 1024 for kb in last.rss_kb], [kb / 1024 for kb in warm.rss_kb],
            ratio=_growth(warm, last),
            ratio_of=f"after {last.executions:,} / after {warm.executions:,}",
            target=Target(op="<=", limit=1.05, text="flat (<= 1.05 x)"),
            note=f"{plan.memory_workers} worker(s); 'baseline' column = the same workers after "
            f"{warm.executions:,}, {_warm_text(warm, h.settings.worker_concurrency)}",
        ),
        figure(
            "worker_rss_cold", f"  the same vs after {first.executions:,}", "MB",
            [kb / 1024 for kb in last.rss_kb], [kb / 1024 for kb in first.rss_kb],
            ratio=_growth(first, last),
            ratio_of=f"after {last.executions:,} / after {first.executions:,}",
            note=f"after {first.executions:,} the worker has not yet used all its slots at once",
        ),
    ], points  # fmt: skip


def _warm_text(warm: Checkpoint, slots: int) -> str:
    """Why `warm` is the baseline checkpoint."""
    if warm.executions >= WARM_SLOTS * slots:
        return f"the first checkpoint past {WARM_SLOTS} x their slots"
    return f"the last checkpoint (none reaches {WARM_SLOTS} x their slots)"


def _growth(before: Checkpoint, after: Checkpoint) -> list[float]:
    """Each worker's RSS at `after` over its RSS at `before`."""
    return [b / a for a, b in zip(before.rss_kb, after.rss_kb, strict=True)]

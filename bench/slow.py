"""Slots sized for I/O: a drain to an agent that answers inline after a delay (2 s), against the
instant agent's drain of the same size in the same run.

Both drains run our workers with their default settings (the harness's node cap aside, as in
every drain): the slow one can only keep pace with the instant one when a worker holds
thousands of agent calls in flight at once, each an idle connection waiting for its answer.
The ratio of the two rates is the figure; each worker's peak resident memory is reported
beside it, and so are Redis' commands per execution and the agent calls beyond one per
execution: an execution called twice was handed back while its first call was still open
(its worker's lease lapsed under load), and ran twice.
"""

from __future__ import annotations

from collections.abc import Awaitable

import httpx

from bench import drain
from bench.drain import Drain
from bench.harness import Harness
from bench.plan import Plan
from bench.stats import Figure, Target, figure


async def measure(h: Harness, plan: Plan, agent_url: str) -> tuple[list[Figure], list[Drain]]:
    """Slow and instant drains of `plan.slow_count`, alternating, back to back."""
    slow_url = await h.start_agent("slow-agent", plan.slow_delay_s)
    drains: list[Drain] = []
    repeated: dict[str, list[int]] = {"slow": [], "instant": []}
    try:
        async with httpx.AsyncClient() as http:
            for run in range(plan.runs):
                profile = plan.profile and run == 0
                slow = drain.run_ours(
                    h, plan.slow_workers, plan.slow_count, slow_url, profile, kind="slow"
                )
                instant = drain.run_ours(
                    h, plan.slow_workers, plan.slow_count, agent_url, kind="instant"
                )
                runs = [(slow, slow_url), (instant, agent_url)]
                for one, url in runs if run % 2 == 0 else runs[::-1]:
                    done = await _counted(http, url, one)
                    drains.append(done[0])
                    repeated[done[0].kind].append(done[1] - done[0].count)
    finally:
        h.stop("slow-agent")
    return _figures(plan, drains, repeated), drains


async def _counted(http: httpx.AsyncClient, url: str, run: Awaitable[Drain]) -> tuple[Drain, int]:
    """The drain, and how many calls its agent answered meanwhile."""
    before = await _calls(http, url)
    done = await run
    return done, await _calls(http, url) - before


async def _calls(http: httpx.AsyncClient, url: str) -> int:
    answer = await http.get(f"{url}/calls")
    answer.raise_for_status()
    return int(answer.text)


def _figures(plan: Plan, drains: list[Drain], repeated: dict[str, list[int]]) -> list[Figure]:
    slow = [d for d in drains if d.kind == "slow"]
    instant = [d for d in drains if d.kind == "instant"]
    how = f"{plan.slow_count:,} queued, {plan.slow_workers} workers, default settings"
    return [
        figure(
            "slow_rps",
            f"drain throughput, {plan.slow_delay_s:g} s agent",
            "exec/s",
            [d.rate for d in slow],
            [d.rate for d in instant],
            ratio_of="slow / instant agent",
            target=Target(op=">=", limit=0.8, text=">= 0.8 x instant agent"),
            note=f"{how}; the baseline is the instant agent's drain of the same size; "
            f"agent calls beyond one per execution, per run: {repeated['slow']} "
            f"(instant agent: {repeated['instant']})",
        ),
        figure(
            "slow_worker_rss",
            f"worker peak RSS, {plan.slow_delay_s:g} s agent",
            "MB",
            [max(d.peak_rss_kb) / 1024 for d in slow],
            [max(d.peak_rss_kb) / 1024 for d in instant],
            note="the largest worker's VmHWM at the end of the drain (baseline: instant agent)",
        ),
        figure(
            "slow_worker_cpu",
            f"worker CPU per execution, {plan.slow_delay_s:g} s agent",
            "µs",
            [d.cpu_us("workers") for d in slow],
            [d.cpu_us("workers") for d in instant],
            note="all worker processes' CPU time during the drain / executions",
        ),
        figure(
            "slow_redis_commands",
            f"Redis commands per execution, {plan.slow_delay_s:g} s agent",
            "commands",
            [d.usage.commands / d.count for d in slow],
            [d.usage.commands / d.count for d in instant],
            note="INFO commandstats over the drain (scripts' commands included) / executions",
        ),
    ]

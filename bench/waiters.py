"""Many sync waiters on one API process: `waiters_many` sync executions
(`POST /api/v1/execute/{target}`) sent at once against an agent that answers `202` and reports on
the callback route `later_s` later (bench/later.py), with the API's default settings and
`drain_workers` workers. The same-run baseline is the same burst of `waiters_few`.

Per request, the overhead is its answer time minus the agent's delay. Where it goes comes from
the clocks of each party (all on this machine): the client's send and answer (bench/burst.py),
the execution's `created_at`, `started_at` and `completed_at` as the API and workers wrote them,
and the agent's arrival, report sent and report answered times. The API's RSS is sampled while
the burst runs; its growth per waiter is the peak over the RSS before the connections opened.
The load generator's, the agent's, the API's and the workers' CPU seconds over the burst are
reported beside it: they share the two cores.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import resource
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import msgspec

from bench.harness import TARGET, Harness
from bench.load import ROOT
from bench.plan import Plan
from bench.stats import Figure, Target, figure, percentile

BODY = b'{"input":{"quarter":"Q3","n":1}}'
PATH = f"/api/v1/execute/{TARGET}"
RSS_SAMPLE_S = 0.05
REDIS_TOP = 12
STEPS = ("accept", "queue", "dispatch", "agent", "report", "wake")


class Round(msgspec.Struct, kw_only=True):
    """One burst: what the client saw, where the time went, memory and CPU."""

    count: int
    answered: int
    succeeded: int
    overhead_ms: list[float]
    steps_ms: dict[str, list[float]]
    rss_before_kb: int
    rss_peak_kb: int
    cpu_s: dict[str, float]
    statuses: dict[str, int]
    refusals: list[str]
    # Calls the agent had for an execution it was already called for, since it started.
    repeated_calls: int
    # Redis' busiest commands over the burst: name -> (calls, microseconds), INFO commandstats.
    redis_top: dict[str, tuple[int, int]]


def _ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp() * 1000


async def _burst(count: int, port: int) -> dict[str, Any]:
    python_path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.burst", "--port", str(port), "--path", PATH,
        "--body", BODY.decode(), "--count", str(count),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": python_path},
    )  # fmt: skip
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"burst generator exited with {process.returncode}")
    summary: dict[str, Any] = json.loads(out)
    return summary


async def _peak_rss(h: Harness, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], h.rss_kb("api"))
        await asyncio.sleep(RSS_SAMPLE_S)


def _cpu(h: Harness, names: list[str]) -> dict[str, float]:
    return {name: h.cpu_s(name) for name in names}


async def _round(h: Harness, plan: Plan, count: int, api_port: int, agent: str) -> Round:
    workers = [n for n in h.processes if n.startswith("worker-")]
    before_kb = h.rss_kb("api")
    peak = [before_kb]
    cpu_before = _cpu(h, ["api", "later", "redis", *workers])
    stats_before = _commandstats(h)
    sampler = asyncio.create_task(_peak_rss(h, peak))
    try:
        burst = await _burst(count, api_port)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    used = {k: h.cpu_s(k) - v for k, v in cpu_before.items()}
    stats = _commandstats(h)
    spent = {
        name: (calls - stats_before.get(name, (0, 0))[0], usec - stats_before.get(name, (0, 0))[1])
        for name, (calls, usec) in stats.items()
    }
    cpu = {
        "load generator": burst["cpu_s"],
        "api": used.pop("api"),
        "agent": used.pop("later"),
        "redis": used.pop("redis"),
        "workers": sum(used.values()),
    }
    async with httpx.AsyncClient() as client:
        stats_of_agent = (await client.get(f"{agent}/stats")).json()
    times = stats_of_agent["times"]
    answers = burst["answers"]
    ids = [a[3] for a in answers if a[2] == 200]
    docs = [msgspec.json.decode(d) for d in h.redis.mget([h.keys.status_doc(i) for i in ids])]
    steps: dict[str, list[float]] = {step: [] for step in STEPS}
    by_id = {a[3]: a for a in answers}
    for doc in docs:
        sent, answered = by_id[doc["execution_id"]][0] * 1000, by_id[doc["execution_id"]][1] * 1000
        arrived, reported, taken = (t * 1000 for t in times[doc["execution_id"]])
        steps["accept"].append(_ms(doc["created_at"]) - sent)
        steps["queue"].append(_ms(doc["started_at"]) - _ms(doc["created_at"]))
        steps["dispatch"].append(arrived - _ms(doc["started_at"]))
        steps["agent"].append(reported - arrived - plan.later_s * 1000)
        steps["report"].append(taken - reported)
        steps["wake"].append(answered - _ms(doc["completed_at"]))
    return Round(
        count=count,
        answered=len(ids),
        succeeded=sum(1 for d in docs if d["status"] == "succeeded"),
        overhead_ms=[(a[1] - a[0] - plan.later_s) * 1000 for a in answers if a[2] == 200],
        steps_ms=steps,
        rss_before_kb=before_kb,
        rss_peak_kb=peak[0],
        cpu_s=cpu,
        repeated_calls=stats_of_agent["repeated"],
        refusals=sorted({_why(body) for body in burst["refusals"]}),
        statuses=dict(collections.Counter(str(a[2]) for a in answers)),
        redis_top=dict(sorted(spent.items(), key=lambda kv: -kv[1][1])[:REDIS_TOP]),
    )


def _busiest(burst: Round) -> str:
    """Redis' busiest commands in a burst, per execution: calls and microseconds."""
    return "per execution, INFO commandstats: " + ", ".join(
        f"{name} {calls / burst.count:.1f} calls {usec / burst.count:.0f} µs"
        for name, (calls, usec) in burst.redis_top.items()
    )


def _why(body: str) -> str:
    """A refusal's code (and the execution's status, for a 504), from its error body."""
    try:
        error = json.loads(body)
        return f"{error['code']} {error.get('status', '')}".strip()
    except (ValueError, KeyError, TypeError):
        return body[:80]


def _commandstats(h: Harness) -> dict[str, tuple[int, int]]:
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in h.redis.info("commandstats").items()
    }


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


async def run(h: Harness, plan: Plan) -> tuple[list[Round], list[Round]]:
    """`plan.runs` pairs of bursts (few, then many), each pair against a fresh API."""
    # The API (and the generator) inherit this process's limit: one descriptor per waiter.
    _raise_fd_limit(plan.waiters_many * 2 + 256)
    few: list[Round] = []
    many: list[Round] = []
    for _ in range(plan.runs):
        h.flush()
        api_port = await h.start_api()
        agent = await h.start_later(api_port, plan.later_s)
        await h.register_node(agent)
        workers = await h.start_workers(plan.drain_workers)
        try:
            few.append(await _round(h, plan, plan.waiters_few, api_port, agent))
            many.append(await _round(h, plan, plan.waiters_many, api_port, agent))
        finally:
            h.stop("api", "later", *workers)
    return few, many


async def measure(h: Harness, plan: Plan) -> list[Figure]:
    """The waiters' figures: answered, overhead p50/p99, RSS per waiter, and where time went."""
    few, many = await run(h, plan)
    n, k = plan.waiters_many, plan.waiters_few

    def each(rounds: list[Round], of: Callable[[Round], float]) -> list[float]:
        return [of(r) for r in rounds]

    def p(fraction: float) -> Callable[[Round], float]:
        return lambda r: percentile(r.overhead_ms, fraction)

    per_waiter = each(many, lambda r: (r.rss_peak_kb - r.rss_before_kb) / r.count)
    p99 = each(many, p(0.99))
    figures = [
        figure(
            "waiters_answered", f"sync waiters: {n:,} at once, answered", "count",
            each(many, lambda r: r.succeeded), each(few, lambda r: r.succeeded),
            ratio=each(many, lambda r: r.succeeded / r.count), ratio_of="succeeded / sent",
            target=Target(op=">=", limit=1.0, text="all"),
            note=f"{n:,} (baseline: {k:,}) sync executions sent at once on open connections; "
            f"agent answers 202 and reports after {plan.later_s:g} s; one API, "
            f"{plan.drain_workers} workers, default settings; answers by status, per run: "
            f"{[r.statuses for r in many]}; agent called again for an execution already "
            f"called, per run: {[r.repeated_calls for r in many]}; "
            f"{'; '.join(sorted({text for r in many for text in r.refusals}))}",
        ),
        figure("waiters_p50", "  overhead p50 beyond the agent's delay", "ms",
               each(many, p(0.5)), each(few, p(0.5)), ratio_of=f"{n:,} / {k:,}"),
        figure("waiters_p99", "  overhead p99 beyond the agent's delay", "ms", p99,
               each(few, p(0.99)), ratio=p99, ratio_of="ms",
               target=Target(op="<=", limit=100.0, text="<= 100 ms")),
        figure("waiters_rss", "  API RSS growth per waiter", "KB", per_waiter,
               each(few, lambda r: (r.rss_peak_kb - r.rss_before_kb) / r.count),
               ratio=per_waiter, ratio_of="KB", target=Target(op="<=", limit=10.0, text="<= 10 KB"),
               note="peak RSS while the burst runs minus RSS before its connections opened"),
    ]  # fmt: skip

    def step(name: str, fraction: float) -> Callable[[Round], float]:
        return lambda r: percentile(r.steps_ms[name], fraction)

    for name in STEPS:
        figures.append(
            figure(f"waiters_{name}_p50", f"  of which {name}, p50", "ms",
                   each(many, step(name, 0.5)), each(few, step(name, 0.5)),
                   ratio_of=f"{n:,} / {k:,}")
        )  # fmt: skip
    figures.append(
        figure("waiters_wake_p99", "  wake (completed -> answered), p99", "ms",
               each(many, step("wake", 0.99)), each(few, step("wake", 0.99)),
               ratio_of=f"{n:,} / {k:,}",
               note="the waiters' own part: from the callback's write to the answer's arrival")
    )  # fmt: skip
    for party in ("load generator", "api", "workers", "agent", "redis"):
        figures.append(
            figure(
                f"waiters_cpu_{party.replace(' ', '_')}",
                f"  CPU of the {party} in the burst",
                "s",
                each(many, lambda r, q=party: r.cpu_s[q]),
                each(few, lambda r, q=party: r.cpu_s[q]),
                ratio_of=f"{n:,} / {k:,}",
                note=_busiest(many[-1]) if party == "redis" else "",
            )
        )
    return figures

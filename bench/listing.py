"""The list route at scale: `GET /api/v1/executions` pages, p50 and p99, with many executions
retained, against a single `GET /api/v1/executions/{id}` of the same Redis (the baseline: one
key read through the same API, client and connection).

The executions are queued with the fast path and run by real workers, so that they are retained
as terminal records, as in production. Three pages are timed: the newest page, a page deep in
the global index (the cursor after `plan.list_depth` pages), and a filtered page (status and
target, answered from the target index with the status checked on each document).
"""

from __future__ import annotations

import time

import httpx

from bench import fill
from bench.harness import TARGET, Harness
from bench.load import AUTH
from bench.plan import Plan
from bench.stats import Figure, Target, figure, percentile

PAGE = 50


async def _settled(h: Harness, plan: Plan, agent_url: str) -> list[str]:
    h.flush()
    await h.register_node(agent_url)
    workers = await h.start_workers(plan.drain_workers)
    try:
        ids = await fill.fill_ours(h, plan.list_retained)
        await fill.settle(h)
    finally:
        h.stop(*workers)
    return ids


async def _timings(http: httpx.AsyncClient, path: str, repeats: int) -> list[float]:
    values = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = await http.get(path)
        values.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} answered {answer.status_code}: {answer.text[:200]}")
    return values


async def measure(h: Harness, plan: Plan, agent_url: str) -> list[Figure]:
    """Per run, p50 and p99 of each page against the single read's."""
    ids = await _settled(h, plan, agent_url)
    port = await h.start_api()
    p50: dict[str, list[float]] = {"newest": [], "deep": [], "filtered": [], "one": []}
    p99: dict[str, list[float]] = {name: [] for name in p50}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            cursor = None
            for _ in range(plan.list_depth):
                after = f"&cursor={cursor}" if cursor else ""
                page = (await http.get(f"/api/v1/executions?limit={PAGE}{after}")).json()
                cursor = page["next_cursor"] or cursor
            paths = {
                "newest": f"/api/v1/executions?limit={PAGE}",
                "deep": f"/api/v1/executions?limit={PAGE}&cursor={cursor}",
                "filtered": f"/api/v1/executions?limit={PAGE}&status=succeeded&target={TARGET}",
                "one": f"/api/v1/executions/{ids[len(ids) // 2]}",
            }
            for _ in range(plan.runs):
                for name, path in paths.items():
                    values = await _timings(http, path, plan.list_repeats)
                    p50[name].append(percentile(values, 0.5))
                    p99[name].append(percentile(values, 0.99))
    finally:
        h.stop("api")
    n = f"{len(ids):,}"
    note = f"{plan.list_repeats} requests per run through httpx; baseline: one GET by id"
    return [
        figure("list_p50", f"list, newest {PAGE}, {n} retained, p50", "ms", p50["newest"],
               p50["one"], ratio_of="list / one GET", note=note,
               target=Target(op="<=", limit=10.0, text="<= 10 x one GET")),
        figure("list_p99", "  the same, p99", "ms", p99["newest"], p99["one"],
               ratio_of="list / one GET"),
        figure("list_deep_p50", f"  {plan.list_depth} pages deep, p50", "ms", p50["deep"],
               p50["one"], ratio_of="list / one GET"),
        figure("list_filtered_p50", "  status + target filter, p50", "ms", p50["filtered"],
               p50["one"], ratio_of="list / one GET"),
        figure("list_filtered_p99", "  status + target filter, p99", "ms", p99["filtered"],
               p99["one"], ratio_of="list / one GET"),
    ]  # fmt: skip

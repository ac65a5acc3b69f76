"""The list route at scale: `GET /api/v1/executions` pages, p50 and p99, with many executions
retained, against a single `GET /api/v1/executions/{id}` of the same Redis (the baseline: one
key read through the same API, client and connection).

The executions are queued with the fast path and ended `succeeded` by the scripts a worker runs
(claim.lua, finish.lua; `fill.succeed_ours`), so that they are retained as the terminal records,
documents and indexes a real drain leaves (a drain of 100,000 on the shared machine took over
half an hour of the bench; the drain section measures workers). Three pages are timed: the
newest page, a page deep in the global index (the cursor after `plan.list_depth` pages), and a
filtered page (status and target, answered from the target index with the status checked on
each document), and a caller's newest page (the key's own index, of the newest tenth).
"""

from __future__ import annotations

import time

import httpx

from agentfield_arq.core.connection import connect
from agentfield_arq.core.credentials import Identity, KeyStore, Role
from bench import fill
from bench.harness import TARGET, Harness
from bench.load import AUTH
from bench.plan import Plan
from bench.stats import Figure, Target, figure, percentile

PAGE = 50


async def _settled(h: Harness, plan: Plan, agent_url: str) -> tuple[list[str], str]:
    """The retained executions (the newest `plan.list_retained // 10` a caller's, the rest an
    admin's) and the caller's key."""
    h.flush()
    await h.register_node(agent_url)
    client = connect(h.url)
    try:
        record, key = await KeyStore(client, h.settings).create(Role.CALLER, name="bench")
    finally:
        await client.aclose()
    caller = Identity(key_id=record.id, role=Role.CALLER)
    mine = min(plan.list_retained // 10, h.settings.key_max_active)
    ids = await fill.fill_ours(h, plan.list_retained - mine)
    ids += await fill.fill_ours(h, mine, owner=caller)
    await fill.succeed_ours(h, ids)
    return ids, key


async def _timings(
    http: httpx.AsyncClient, path: str, repeats: int, headers: dict[str, str] | None = None
) -> list[float]:
    values = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = await http.get(path, headers=headers)
        values.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} answered {answer.status_code}: {answer.text[:200]}")
    return values


async def measure(h: Harness, plan: Plan, agent_url: str) -> list[Figure]:
    """Per run, p50 and p99 of each page against the single read's."""
    ids, key = await _settled(h, plan, agent_url)
    port = await h.start_api()
    p50: dict[str, list[float]] = {
        "newest": [], "deep": [], "filtered": [], "caller": [], "one": [],
    }  # fmt: skip
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
            caller = {"Authorization": f"Bearer {key}"}
            for _ in range(plan.runs):
                for name, path in paths.items():
                    values = await _timings(http, path, plan.list_repeats)
                    p50[name].append(percentile(values, 0.5))
                    p99[name].append(percentile(values, 0.99))
                values = await _timings(http, paths["newest"], plan.list_repeats, caller)
                p50["caller"].append(percentile(values, 0.5))
                p99["caller"].append(percentile(values, 0.99))
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
        figure("list_caller_p50", f"  a caller's newest {PAGE} (its own index), p50", "ms",
               p50["caller"], p50["one"], ratio_of="list / one GET"),
        figure("list_caller_p99", "  the same, p99", "ms", p99["caller"], p99["one"],
               ratio_of="list / one GET"),
    ]  # fmt: skip

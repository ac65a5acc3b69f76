"""The dashboard at scale: each page loaded in headless Chromium (the system's, driven by
Playwright, as tests/e2e/test_ui.py does), with `plan.list_retained` executions retained,
against the same pages with BASELINE_RETAINED retained (the baseline: same API, same browser,
same run). A page is timed from navigation to its data being shown, in a fresh browser context
each time (nothing cached), and the bytes it fetched are counted from the browser's resource
timings: all of them, and the API's answers alone (the event streams, which never end, are in
neither).

The executions are queued with the fast path and run by real workers, so that they are
retained as terminal records, as in production.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass

import httpx
from playwright.async_api import Browser, async_playwright

from bench import fill
from bench.harness import Harness
from bench.load import ADMIN_KEY, AUTH
from bench.plan import Plan
from bench.stats import Figure, Target, figure

BASELINE_RETAINED = 100
LOADS = 5
SHOWN_WITHIN_MS = 60_000
# What each page shows once its data is in (the dashboard's own markup).
READY = {
    "overview": ("#/", "svg.chart rect.bar"),
    "executions": ("#/executions", "table.executions tbody tr[data-id]"),
    "execution": ("#/executions/{id}", "ol.timeline li"),
    "nodes": ("#/nodes", "table.nodes tr[data-id]"),
}
_SIZES = """() => [...performance.getEntriesByType("navigation"),
  ...performance.getEntriesByType("resource")].map((e) => [e.name, e.transferSize])"""


@dataclass(frozen=True, slots=True)
class Load:
    """One page load: how long until its data showed, and the bytes fetched."""

    ms: float
    total_bytes: int
    api_bytes: int


def chromium() -> str:
    """The system's Chromium (CHROMIUM names another)."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if found is None:
        raise RuntimeError("no chromium on PATH (apt-get install chromium, or set CHROMIUM)")
    return found


async def _load(browser: Browser, base: str, me: str, where: str, ready: str) -> Load:
    context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 860})
    # Logged in already, as after the login form: the key and who it is, in sessionStorage.
    login = f"""sessionStorage.setItem("agentfield-arq-key", {json.dumps(ADMIN_KEY)});
        sessionStorage.setItem("agentfield-arq-me", {json.dumps(me)});"""
    await context.add_init_script(login)
    page = await context.new_page()
    try:
        started = time.perf_counter()
        await page.goto(f"/ui/{where}")
        await page.locator(ready).first.wait_for(timeout=SHOWN_WITHIN_MS)
        ms = (time.perf_counter() - started) * 1000
        sizes: list[tuple[str, int]] = await page.evaluate(_SIZES)
    finally:
        await context.close()
    api = [size for name, size in sizes if "/api/" in name or name.endswith("/metrics")]
    return Load(ms=ms, total_bytes=sum(s for _, s in sizes), api_bytes=sum(api))


async def _pages(h: Harness, port: int, plan: Plan, execution_id: str) -> dict[str, list[Load]]:
    """Per page, the median load of each run (LOADS loads a run, after one of each page that
    warms the API and the browser up)."""
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, headers=AUTH) as http:
        me = (await http.get("/api/v1/whoami")).text
    found: dict[str, list[Load]] = {name: [] for name in READY}
    async with async_playwright() as playwright:
        # --no-sandbox: the bench runs as root on these machines, where the sandbox cannot start.
        launch = {"executable_path": chromium(), "args": ["--no-sandbox"]}
        browser = await playwright.chromium.launch(**launch)
        try:
            for where, ready in READY.values():  # one load of each first, not counted
                await _load(browser, base, me, where.format(id=execution_id), ready)
            for _ in range(plan.runs):
                for name, (where, ready) in READY.items():
                    path = where.format(id=execution_id)
                    loads = [await _load(browser, base, me, path, ready) for _ in range(LOADS)]
                    found[name].append(
                        Load(
                            ms=statistics.median(x.ms for x in loads),
                            total_bytes=round(statistics.median(x.total_bytes for x in loads)),
                            api_bytes=round(statistics.median(x.api_bytes for x in loads)),
                        )
                    )
        finally:
            await browser.close()
    return found


async def _retain(h: Harness, plan: Plan, count: int) -> list[str]:
    """Queue `count` more executions and let real workers end them all."""
    workers = await h.start_workers(plan.drain_workers)
    try:
        ids = await fill.fill_ours(h, count)
        await fill.settle(h)
    finally:
        h.stop(*workers)
    return ids


async def measure(h: Harness, plan: Plan, agent_url: str) -> list[Figure]:
    """Each page's load time and bytes with `plan.list_retained` retained, against
    BASELINE_RETAINED."""
    h.flush()
    await h.register_node(agent_url)
    few = await _retain(h, plan, BASELINE_RETAINED)
    port = await h.start_api()
    try:
        baseline = await _pages(h, port, plan, few[len(few) // 2])
        many = few + await _retain(h, plan, plan.list_retained - BASELINE_RETAINED)
        ours = await _pages(h, port, plan, many[len(many) // 2])
    finally:
        h.stop("api")
    n, b = f"{len(many):,}", f"{BASELINE_RETAINED:,}"
    note = f"median of {LOADS} loads a run in a fresh Chromium context; baseline: {b} retained"
    found: list[Figure] = []
    for name in READY:
        ratio = f"{n} / {b} retained"
        found += [
            figure(
                f"ui_{name}_ms", f"dashboard {name}, {n} retained, load", "ms",
                [x.ms for x in ours[name]], [x.ms for x in baseline[name]], ratio_of=ratio,
                note=note if name == "overview" else "",
                target=Target(op="<=", limit=2.0, text="<= 2 x with 100 retained"),
            ),
            figure(
                f"ui_{name}_api_kb", "  the API's answers", "kB",
                [x.api_bytes / 1000 for x in ours[name]],
                [x.api_bytes / 1000 for x in baseline[name]], ratio_of=ratio,
            ),
            figure(
                f"ui_{name}_total_kb", "  everything fetched", "kB",
                [x.total_bytes / 1000 for x in ours[name]],
                [x.total_bytes / 1000 for x in baseline[name]], ratio_of=ratio,
            ),
        ]  # fmt: skip
    return found

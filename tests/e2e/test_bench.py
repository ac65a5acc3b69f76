"""The benchmark's code paths on tiny counts: every section runs and reports. The figures are
not asserted (they mean nothing at these sizes and on a busy machine)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import SECTIONS, measure
from bench.plan import Plan

pytestmark = pytest.mark.e2e

TINY = Plan(
    runs=1,
    connections=4,
    enqueue_s=0.5,
    warmup_s=0.2,
    drain_count=40,
    drain_workers=1,
    scaling=(1,),
    e2e_count=3,
    batch_ids=20,
    batch_repeats=2,
    memory_small=20,
    memory_large=60,
    monitor_sample=5,
    slow_count=20,
    slow_workers=1,
    slow_delay_s=0.2,
    list_retained=30,
    list_depth=2,
    list_repeats=3,
    fanout_subscribers=3,
    fanout_events=5,
    waiters_many=20,
    waiters_few=5,
    later_s=0.2,
)


@pytest.mark.timeout(180)
async def test_every_section_of_the_benchmark_runs_and_reports(tmp_path: Path) -> None:
    results = await measure(TINY, set(SECTIONS), tmp_path / "run")
    assert results["errors"] == {}
    keys = {f.key for f in results["figures"]}
    assert {"enqueue_rps", "drain_rps", "e2e_p50", "batch_status", "worker_rss"} <= keys
    assert {"list_p50", "list_p99", "sse_rate", "sse_p99", "sse_api_rss"} <= keys
    assert {"waiters_answered", "waiters_p99", "waiters_rss", "waiters_wake_p99"} <= keys
    assert {"slow_rps", "slow_worker_rss", "slow_worker_cpu"} <= keys
    assert set(results["commands"]) == {"enqueue (API)", "run (worker)"}
    table = report.table(results["figures"])
    assert table.count("\n") == len(results["figures"]) + 1
    report.write_json(tmp_path / "results.json", results)
    if importlib.util.find_spec("matplotlib"):  # a bench extra, not a dev one
        report.chart(tmp_path / "results.png", results["figures"], results["drains"],
                     results["checkpoints"])  # fmt: skip
        assert (tmp_path / "results.png").stat().st_size > 0

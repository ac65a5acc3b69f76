"""The metrics' exposition, from a snapshot, without Redis."""

from __future__ import annotations

import re

from agentfield_arq.api.metrics import families
from agentfield_arq.core.metrics import BUCKETS_MS, Histogram, Snapshot
from agentfield_arq.core.scripts import source


def test_the_lua_histogram_bounds_are_the_ones_metrics_reads() -> None:
    bounds = re.search(r"BUCKETS_MS = \{([^}]*)\}", source("claim"))
    assert bounds is not None
    assert tuple(int(b) for b in bounds.group(1).split(",")) == BUCKETS_MS


def test_histogram_buckets_are_cumulative_in_seconds() -> None:
    counts = dict.fromkeys([*map(str, BUCKETS_MS), "+Inf"], 0)
    counts.update({"5": 2, "100": 1, "+Inf": 1})
    wait = Histogram(buckets=counts, sum_ms=5_000_020, count=4)
    empty = Histogram(buckets=dict.fromkeys(counts, 0), sum_ms=0, count=0)
    snapshot = Snapshot(
        by_status={}, created={}, ended={}, wait=wait, run=empty, agent_calls={},
        webhook_attempts={}, webhook_dead=0, queue_jobs=0, queue_by_kind={},
        oldest_queued_s=0.0, workers_alive=0,
    )  # fmt: skip
    (histogram,) = (
        f for f in families(snapshot) if f.name == "agentfield_arq_enqueue_to_start_seconds"
    )
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert (buckets["0.005"], buckets["0.05"], buckets["0.1"], buckets["+Inf"]) == (2, 2, 3, 4)
    sums = [s.value for s in histogram.samples if s.name.endswith("_sum")]
    assert sums == [5000.02]

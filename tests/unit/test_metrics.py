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


def _snapshot(wait: Histogram, queued: int = 0) -> Snapshot:
    empty = Histogram(buckets=dict.fromkeys(wait.buckets, 0), sum_ms=0, count=0)
    return Snapshot(
        by_status={}, created={}, ended={}, wait=wait, run=empty, agent_calls={},
        webhook_attempts={}, webhook_dead=0, queue_jobs=queued,
        queue_by_kind={"execution": queued}, oldest_queued_s=0.0, workers_alive=0,
    )  # fmt: skip


def test_histogram_buckets_are_cumulative_in_seconds() -> None:
    counts = dict.fromkeys([*map(str, BUCKETS_MS), "+Inf"], 0)
    counts.update({"5": 2, "100": 1, "+Inf": 1})
    snapshot = _snapshot(Histogram(buckets=counts, sum_ms=5_000_020, count=4))
    (histogram,) = (
        f for f in families({"0": snapshot}) if f.name == "agentfield_arq_enqueue_to_start_seconds"
    )
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert (buckets["0.005"], buckets["0.05"], buckets["0.1"], buckets["+Inf"]) == (2, 2, 3, 4)
    sums = [s.value for s in histogram.samples if s.name.endswith("_sum")]
    assert sums == [5000.02]


def _samples(snapshots: dict[str, Snapshot]) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    return {
        family.name: {tuple(sorted(s.labels.items())) for s in family.samples}
        for family in families(snapshots)
    }


def test_one_redis_labels_no_series_with_its_code() -> None:
    none = Histogram(buckets=dict.fromkeys([*map(str, BUCKETS_MS), "+Inf"], 0), sum_ms=0, count=0)
    for name, labels in _samples({"0": _snapshot(none, queued=3)}).items():
        assert all("redis" not in dict(each) for each in labels), name


def test_several_redis_label_every_series_with_the_code_of_its_redis() -> None:
    none = Histogram(buckets=dict.fromkeys([*map(str, BUCKETS_MS), "+Inf"], 0), sum_ms=0, count=0)
    snapshots = {"0": _snapshot(none, queued=3), "1": _snapshot(none, queued=5)}
    for name, labels in _samples(snapshots).items():
        assert {dict(each).get("redis") for each in labels} <= {"0", "1"}, name
    depth = {
        s.labels["redis"]: s.value
        for family in families(snapshots)
        if family.name == "agentfield_arq_queue_depth"
        for s in family.samples
    }
    assert depth == {"0": 3, "1": 5}

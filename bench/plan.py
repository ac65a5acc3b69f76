"""How much to measure: the full plan (a few minutes on a 2-core machine) and a quick one."""

from __future__ import annotations

import msgspec


class Plan(msgspec.Struct, kw_only=True, frozen=True):
    """Counts and durations of one benchmark run."""

    runs: int = 3
    connections: int = 64
    enqueue_s: float = 10.0
    warmup_s: float = 1.0
    drain_count: int = 10_000
    drain_workers: int = 2
    scaling: tuple[int, ...] = (1, 2, 4)
    e2e_count: int = 200
    batch_ids: int = 1000
    batch_repeats: int = 50
    memory_small: int = 1_000
    memory_large: int = 100_000
    memory_workers: int = 1
    monitor_sample: int = 200
    slow_count: int = 4_000
    slow_workers: int = 2
    slow_delay_s: float = 2.0
    list_retained: int = 100_000
    list_depth: int = 100
    list_repeats: int = 200
    fanout_subscribers: int = 1000
    fanout_events: int = 2000
    waiters_many: int = 5000
    waiters_few: int = 200
    later_s: float = 2.0
    profile: bool = False


FULL = Plan()
QUICK = Plan(
    runs=2,
    enqueue_s=2.0,
    warmup_s=0.5,
    drain_count=1_000,
    scaling=(1, 2),
    e2e_count=30,
    batch_repeats=10,
    memory_small=200,
    memory_large=2_000,
    monitor_sample=50,
    slow_count=1_000,
    list_retained=5_000,
    list_depth=10,
    list_repeats=50,
    fanout_subscribers=100,
    fanout_events=200,
    waiters_many=1000,
    waiters_few=100,
)

"""The last hour read from several Redis is counted together, minute by minute."""

from __future__ import annotations

from agentfield_arq.core.activity import added
from agentfield_arq.kernel.models import Activity, ActivityMinute


def _hour(*counts: dict[str, int]) -> Activity:
    return Activity(
        minutes=[
            ActivityMinute(at=f"2026-12-01T15:0{i}:00.000Z", counts=c) for i, c in enumerate(counts)
        ]
    )


def test_each_minute_adds_up_every_redis_counts_status_by_status() -> None:
    one = _hour({"queued": 1, "succeeded": 2}, {"failed": 1})
    two = _hour({"queued": 3}, {"failed": 2, "running": 5})

    total = added([one, two])

    assert [m.counts for m in total.minutes] == [
        {"queued": 4, "succeeded": 2},
        {"failed": 3, "running": 5},
    ]
    assert [m.at for m in total.minutes] == [m.at for m in one.minutes]

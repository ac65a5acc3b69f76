"""Worker retry delays grow exponentially, are capped and jittered."""

from __future__ import annotations

import random

from agentfield_arq.kernel.backoff import backoff_s


def test_backoff_doubles_per_attempt_within_its_jitter_band() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        delay = backoff_s(attempt, base_s=1.0, cap_s=30.0, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_never_exceeds_its_cap() -> None:
    assert backoff_s(30, base_s=1.0, cap_s=5.0) <= 5.0

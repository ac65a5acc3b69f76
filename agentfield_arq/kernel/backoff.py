"""Retry delays, shared by the worker (agent calls) and the SDK (callbacks, registration).

A module of its own, standard library only, so that an agent importing it does not pull in
the store and Redis.
"""

from __future__ import annotations

import random


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1-based): exponential and capped, with jitter over
    its upper half so that a burst of failures does not retry in lockstep."""
    ceiling: float = min(cap_s, base_s * 2.0 ** (attempt - 1))
    jitter: float = (rng or random).random()
    return ceiling * (0.5 + 0.5 * jitter)

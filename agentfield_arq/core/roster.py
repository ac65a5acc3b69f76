"""Which worker processes are alive: those whose liveness lease (core/lease.py, the sorted set
`Keys.workers` scored by when each lease lapses) has not lapsed. The same set the reaper reads,
so /ready, /api/v1/health?detail=1, /metrics and the `queue` command count exactly the workers
whose claims recovery leaves alone."""

from __future__ import annotations

from redis.asyncio import Redis

from agentfield_arq.core.keys import Keys


class Roster:
    """The roster of one deployment (its key prefix)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def alive(self, now_ms: int) -> int:
        """Workers whose lease lapses after `now_ms` (unix ms)."""
        count: int = await self.redis.zcount(self.keys.workers, f"({now_ms}", "+inf")
        return count

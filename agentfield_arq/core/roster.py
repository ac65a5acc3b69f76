"""Which worker processes are alive: each one's poll loop refreshes its entry in a sorted set,
scored by the time (`arq_bridge.Heartbeat`); one not heard from for `ALIVE_S` is counted out
(and dropped by the next beat of any worker). Read by /ready, /api/v1/health?detail=1, /metrics
and the `queue` command."""

from __future__ import annotations

from redis.asyncio import Redis

from agentfield_arq.core.arq_bridge import Heartbeat
from agentfield_arq.core.keys import Keys

ALIVE_S = Heartbeat.ALIVE_S


class Roster:
    """The roster of one deployment (its key prefix)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def alive(self, now_ms: int) -> int:
        """Workers heard from within `ALIVE_S` of `now_ms` (unix ms)."""
        count: int = await self.redis.zcount(self.keys.workers, now_ms - ALIVE_S * 1000, "+inf")
        return count

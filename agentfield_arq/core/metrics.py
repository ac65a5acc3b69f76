"""What /metrics, /ready and /api/v1/health?detail=1 report, read from Redis when asked.

Nothing is counted in a process's memory: the Lua scripts keep the counters and histograms
(`keys.stats_*`) in the same steps as the transitions, workers add their agent-call counts and
heartbeats, and every gauge is computed from Redis at scrape time. So any API replica answers
for the whole deployment, workers need no metrics port, and no multiprocess mode is needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from agentfield_arq.core.catalog import UNINDEXED
from agentfield_arq.core.keys import Keys
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.roster import Roster
from agentfield_arq.kernel.codec import now_ms, text
from agentfield_arq.kernel.status import Status

# lua/common.lua's BUCKETS_MS: the histograms' upper bounds, in milliseconds.
BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
              900000, 3600000)  # fmt: skip
# Queue members scanned per scrape, at most (the queue holds waiting jobs only).
QUEUE_SCAN_MAX = 200_000
# A job id's prefix names its kind (core/arq_bridge.py): the queue depth is split by it.
JOB_KINDS = (("exec_", "execution"), ("whk_", "webhook_delivery"), ("ntc_", "webhook_notice"))


@dataclass(frozen=True, slots=True)
class Histogram:
    """Per-bucket counts (not cumulative) keyed by bound in ms (`+Inf` last), sum and count."""

    buckets: dict[str, int]
    sum_ms: int
    count: int

    @classmethod
    def of(cls, raw: dict[bytes, bytes]) -> Histogram:
        """From a histogram hash as the scripts write it (buckets and `sum`; the count is the
        buckets' sum, which the scripts do not keep apart)."""
        fields = {text(k): int(v) for k, v in raw.items()}
        buckets = {b: fields.get(b, 0) for b in (*map(str, BUCKETS_MS), "+Inf")}
        return cls(buckets=buckets, sum_ms=fields.get("sum", 0), count=sum(buckets.values()))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The deployment's state and counters at one moment."""

    by_status: dict[str, int]
    created: dict[str, int]
    ended: dict[tuple[str, str], int]
    wait: Histogram
    run: Histogram
    agent_calls: dict[str, int]
    webhook_attempts: dict[str, int]
    webhook_dead: int
    queue_jobs: int
    queue_by_kind: dict[str, int]
    oldest_queued_s: float
    workers_alive: int
    nodes: dict[str, int] = field(default_factory=dict)
    redis_rtt_s: float = 0.0


def _counts(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {text(k): int(v) for k, v in raw.items()}


class Gauges:
    """Reads a Snapshot (a few pipelined reads, one bounded scan of the queue)."""

    def __init__(self, redis: Redis, keys: Keys, nodes: NodeRegistry) -> None:
        self.redis = redis
        self.keys = keys
        self.nodes = nodes

    async def rtt_s(self) -> float:
        """One PING's round trip, in seconds."""
        began = time.perf_counter()
        await self.redis.ping()
        return time.perf_counter() - began

    async def queue(self, now: int) -> tuple[int, dict[str, int], float]:
        """Jobs due now, split by kind, and the age (s) of the oldest one. Due now is what
        create.lua counts against `AGENTFIELD_ARQ_MAX_QUEUED` (`ZCOUNT -inf now`): a webhook
        retry waiting for its time is in neither, so the gauge shows what the cap sees."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(k.queue, "-inf", now)
            pipe.zrangebyscore(k.queue, "-inf", now, start=0, num=1, withscores=True)
            total, due = await pipe.execute()
        by_kind = dict.fromkeys([kind for _, kind in JOB_KINDS] + ["other"], 0)
        cursor, scanned = 0, 0
        while scanned < QUEUE_SCAN_MAX:
            cursor, members = await self.redis.zscan(k.queue, cursor, count=1000)
            for member, score in members:
                if score > now:
                    continue
                job = text(member)
                kind = next((name for prefix, name in JOB_KINDS if job.startswith(prefix)), "other")
                by_kind[kind] += 1
            scanned += len(members)
            if cursor == 0:
                break
        oldest = max(now - int(due[0][1]), 0) / 1000 if due else 0.0
        return int(total), by_kind, oldest

    async def snapshot(self) -> Snapshot:
        """Everything /metrics shows."""
        k = self.keys
        now = now_ms()
        rtt = await self.rtt_s()
        indexed = [each for each in Status if each not in UNINDEXED]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.index_all)
            for each in indexed:
                pipe.zcard(k.index_status(each))
            for key in (k.stats_executions, k.stats_wait, k.stats_run):
                pipe.hgetall(key)
            pipe.hgetall(k.stats_agent_calls)
            pipe.hgetall(k.stats_webhook_attempts)
            pipe.zcard(k.dead_webhooks)
            replies = await pipe.execute()
        everything, *counts = replies[: len(indexed) + 1]
        by_status = dict(zip(map(str, indexed), map(int, counts), strict=True))
        # Succeeded has no index: the rest of the global one (members not yet pruned included).
        by_status[Status.SUCCEEDED] = max(int(everything) - sum(by_status.values()), 0)
        executions, wait, run, calls, attempts, dead = replies[len(indexed) + 1 :]
        created: dict[str, int] = {}
        ended: dict[tuple[str, str], int] = {}
        for name, count in _counts(executions).items():
            kind, _, rest = name.partition("|")
            if kind == "created":
                created[rest] = count
            else:
                target, _, status = rest.rpartition("|")
                ended[(target, status)] = count
        total, by_kind, oldest = await self.queue(now)
        return Snapshot(
            by_status=by_status,
            created=created,
            ended=ended,
            wait=Histogram.of(wait),
            run=Histogram.of(run),
            agent_calls=_counts(calls),
            webhook_attempts=_counts(attempts),
            webhook_dead=int(dead),
            queue_jobs=total,
            queue_by_kind=by_kind,
            oldest_queued_s=oldest,
            workers_alive=await Roster(self.redis, k).alive(now),
            nodes=await self.node_counts(),
            redis_rtt_s=rtt,
        )

    async def node_counts(self) -> dict[str, int]:
        """Registered nodes by liveness (`active`, `inactive`)."""
        counts = {"active": 0, "inactive": 0}
        for node in await self.nodes.list():
            counts[node["status"]] = counts.get(node["status"], 0) + 1
        return counts

"""The last hour of executions, minute by minute, by status: counted from the execution
indexes (`keys.py`), whose members sort by id and so by creation time. Each count is one
ZLEXCOUNT between two minutes' id floors (logarithmic in the index), so the answer costs the
same with a hundred executions retained or a hundred thousand, and is exact on first load.

A minute's counts are the executions created in it, by the status each has now: succeeded,
which has no index, is the rest of the global one (as /metrics counts it).
"""

from __future__ import annotations

import itertools

from redis.asyncio import Redis

from agentfield_arq.core.catalog import UNINDEXED
from agentfield_arq.core.keys import Keys
from agentfield_arq.kernel.codec import id_floor, rfc3339
from agentfield_arq.kernel.models import Activity, ActivityMinute
from agentfield_arq.kernel.status import Status

MINUTE_MS = 60_000
MINUTES = 60


async def last_hour(redis: Redis, keys: Keys, now_ms: int) -> Activity:
    """The executions created in each of the last MINUTES minutes (the current one last), by
    status now."""
    first = (now_ms // MINUTE_MS - MINUTES + 1) * MINUTE_MS
    starts = [first + i * MINUTE_MS for i in range(MINUTES + 1)]
    bounds = [id_floor("exec", ms) for ms in starts]
    indexed = [s for s in Status if s not in UNINDEXED]
    async with redis.pipeline(transaction=False) as pipe:
        for index in (keys.index_all, *map(keys.index_status, indexed)):
            for low, high in itertools.pairwise(bounds):
                pipe.zlexcount(index, "[" + low, "(" + high)  # type: ignore[no-untyped-call]  # redis-py stubs
        replies = [int(n) for n in await pipe.execute()]
    minutes = []
    for i in range(MINUTES):
        counts = {str(s): replies[(j + 1) * MINUTES + i] for j, s in enumerate(indexed)}
        # UNINDEXED is succeeded alone: the rest of the global index.
        counts[Status.SUCCEEDED] = max(replies[i] - sum(counts.values()), 0)
        minutes.append(ActivityMinute(at=rfc3339(starts[i]), counts=counts))
    return Activity(minutes=minutes)


def added(hours: list[Activity]) -> Activity:
    """The same hour read from several Redis (core/routing.py), counted together."""
    first, *rest = hours
    for other in rest:
        for mine, theirs in zip(first.minutes, other.minutes, strict=True):
            for status, n in theirs.counts.items():
                mine.counts[status] = mine.counts.get(status, 0) + n
    return first

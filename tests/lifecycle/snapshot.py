"""What Redis holds after a step, read in two pipelines, for the invariants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.kernel.codec import text


@dataclass
class Snapshot:
    """What Redis holds after a step, read in one pipeline."""

    hashes: dict[str, dict[str, str]]
    docs: dict[str, bytes | None]
    views: dict[str, bytes | None]
    webhooks: dict[str, dict[str, str]]
    webhook_events: dict[str, list[bytes]]
    ttls_ms: dict[str, int]
    deadlines: set[str]
    queue: dict[str, int]
    stream: list[dict[str, str]]
    dead: list[str]
    nodes: set[str]
    # node_slots and node_waiting keys -> member -> score
    slot_sets: dict[str, dict[str, int]]
    # af:holders (execution -> worker) and af:workers (worker -> when its lease lapses)
    holders: dict[str, str]
    workers: dict[str, int]


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


async def read(redis: Redis, k: Keys, ids: list[str], nodes: list[str]) -> Snapshot:
    """Every key, TTL, index, stream entry and per-execution record the invariants check."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.keys("*")
        pipe.zrange(k.deadlines, 0, -1)
        pipe.zrange(k.queue, 0, -1, withscores=True)
        pipe.xrange(k.events)
        pipe.zrange(k.dead_webhooks, 0, -1)
        pipe.smembers(k.nodes)
        pipe.hgetall(k.holders)
        pipe.zrange(k.workers, 0, -1, withscores=True)
        slot_keys = [key for n in nodes for key in (k.node_slots(n), k.node_waiting(n))]
        for key in slot_keys:
            pipe.zrange(key, 0, -1, withscores=True)
        for i in ids:
            pipe.hgetall(k.execution(i))
            pipe.get(k.status_doc(i))
            pipe.get(k.webhook_view(i))
            pipe.hgetall(k.webhook(i))
            pipe.lrange(k.webhook_events(i), 0, -1)
        replies: list[Any] = await pipe.execute()
    names, deadlines, queue, stream, dead, members, holders, workers, *rest = replies
    sets, per_run = rest[: len(slot_keys)], rest[len(slot_keys) :]
    keys = sorted(text(name) for name in names)
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.pttl(key)
        ttls: list[int] = await pipe.execute()
    snap = Snapshot(
        hashes={}, docs={}, views={}, webhooks={}, webhook_events={},
        ttls_ms=dict(zip(keys, ttls, strict=True)),
        deadlines={text(m) for m in deadlines},
        queue={text(m): int(score) for m, score in queue},
        stream=[_decoded(fields) for _id, fields in stream],
        dead=[text(m) for m in dead],
        nodes={text(m) for m in members},
        holders=_decoded(holders),
        workers={text(m): int(score) for m, score in workers},
        slot_sets={
            key: {text(m): int(score) for m, score in found}
            for key, found in zip(slot_keys, sets, strict=True)
        },
    )  # fmt: skip
    it = iter(per_run)
    for i in ids:
        snap.hashes[i] = _decoded(next(it))
        snap.docs[i] = next(it)
        snap.views[i] = next(it)
        snap.webhooks[i] = _decoded(next(it))
        snap.webhook_events[i] = next(it)
    return snap

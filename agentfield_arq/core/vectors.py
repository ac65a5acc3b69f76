"""Vector memory in Redis: AgentField's `vector/set`, `vector/delete` and `vector/search`.

A scope keeps two hashes keyed by vector key: the JSON record (`Keys.vectors`, readable with
`redis-cli`, with the vector's norm) and its unit vector packed as little-endian float32
(`Keys.vector_numbers`), which a search reads without parsing: a similarity is then a dot
product, and no sum can overflow. Search is exact: every vector of the one scope, cosine similarity,
in Python; the per-scope cap bounds its cost (`python -m bench.vectors` measures it).
"""

from __future__ import annotations

import array
import asyncio
import heapq
import math
import operator
import sys
from typing import Any

import msgspec
from redis.asyncio import Redis

from agentfield_arq.core.keys import Keys
from agentfield_arq.core.memory import Scope, check_key, ttl
from agentfield_arq.core.scripts import load_script
from agentfield_arq.core.settings import Settings
from agentfield_arq.kernel.codec import encode, now_ms, rfc3339, text
from agentfield_arq.kernel.errors import MemoryScopeFull, MemoryValueTooLarge
from agentfield_arq.kernel.memory import VectorHit, VectorRecord

MAX_TOP_K = 1000
_record_decoder = msgspec.json.Decoder(VectorRecord)


def pack(numbers: list[float]) -> bytes:
    """Numbers as little-endian float32."""
    packed = array.array("f", numbers)
    if sys.byteorder == "big":  # pragma: no cover - every machine here is little-endian
        packed.byteswap()
    return packed.tobytes()


def unpack(blob: bytes) -> array.array[float]:
    """The inverse of `pack`."""
    numbers = array.array("f")
    numbers.frombytes(blob)
    if sys.byteorder == "big":  # pragma: no cover
        numbers.byteswap()
    return numbers


def _direction(numbers: list[float]) -> tuple[array.array[float], float]:
    """The unit vector of `numbers` as float32, and their norm (hypot: no overflow). A zero
    vector has no direction: it is kept as zeros, and every similarity with it is 0."""
    norm = math.hypot(*numbers)
    unit = [x / norm for x in numbers] if norm else [0.0] * len(numbers)
    return unpack(pack(unit)), norm


class VectorStore:
    """Vectors per scope: set, delete, exact cosine search."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.key_prefix)
        self.settings = settings
        self._set = load_script(redis, "vector_set")

    async def set(
        self, scope: Scope, key: str, embedding: list[float], metadata: dict[str, Any] | None
    ) -> None:
        """Store one vector (its metadata and norm with it) under `key`."""
        check_key(key)
        dims = self.settings.memory_max_vector_dims
        if len(embedding) > dims:
            raise MemoryValueTooLarge(f"embedding: at most {dims} numbers, got {len(embedding)}")
        numbers, norm = _direction(embedding)
        cap = self.settings.memory_max_value_bytes
        if metadata and len(encode(metadata)) > cap:
            raise MemoryValueTooLarge(f"metadata: over {cap} bytes of JSON")
        now = rfc3339(now_ms())
        record = encode(
            {
                "updated_at": now,
                "key": key,
                "scope": scope.name,
                "scope_id": scope.id,
                "metadata": metadata or {},
                "norm": norm,
            }
        )
        reply = await self._set(
            keys=[self.keys.vectors(scope.name, scope.id), self._numbers(scope)],
            args=[
                key,
                b"," + record[1:],
                now,
                self.settings.memory_max_vectors_per_scope,
                ttl(self.settings, scope),
                pack(list(numbers)),
            ],
        )
        if text(reply[0]) == "full":
            raise MemoryScopeFull(
                f"scope {scope.name} '{scope.id[:64]}' holds "
                f"{self.settings.memory_max_vectors_per_scope} vectors, its cap; delete some first"
            )

    async def delete(self, scope: Scope, key: str) -> None:
        """Delete one vector; deleting a missing one changes nothing."""
        check_key(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.vectors(scope.name, scope.id), key)
            pipe.hdel(self._numbers(scope), key)
            await pipe.execute()

    async def search(
        self, scope: Scope, query: list[float], top_k: int, filters: dict[str, Any] | None
    ) -> list[VectorHit]:
        """The `top_k` vectors of `scope` most similar to `query` (cosine, exact); vectors of
        another dimension, or whose metadata does not match `filters`, are left out."""
        numbers, _ = _direction(query)
        top_k = min(top_k if top_k > 0 else 10, MAX_TOP_K)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.vectors(scope.name, scope.id))
            pipe.hgetall(self._numbers(scope))
            records, blobs = await pipe.execute()
        found = [
            (_record_decoder.decode(raw), unpack(blobs[key]))
            for key, raw in records.items()
            if key in blobs
        ]
        # Tens of milliseconds of CPU at the cap: in a thread, so that the event loop serves
        # other requests meanwhile (the GIL is handed over every few milliseconds).
        return await asyncio.to_thread(rank, found, numbers, top_k, filters)

    def _numbers(self, scope: Scope) -> str:
        return self.keys.vector_numbers(scope.name, scope.id)


def rank(
    found: list[tuple[VectorRecord, array.array[float]]],
    query: array.array[float],
    top_k: int,
    filters: dict[str, Any] | None,
) -> list[VectorHit]:
    """Score each (record, unit vector) against the unit `query` by cosine similarity (their
    dot product); keep the best."""
    scored = []
    for record, numbers in found:
        if len(numbers) != len(query):
            continue
        if filters and any(record.metadata.get(k) != v for k, v in filters.items()):
            continue
        score = sum(map(operator.mul, numbers, query))
        scored.append((score, record))
    best = heapq.nlargest(top_k, scored, key=operator.itemgetter(0))
    return [
        VectorHit(
            scope=r.scope,
            scope_id=r.scope_id,
            key=r.key,
            score=score,
            distance=1.0 - score,
            metadata=r.metadata,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for score, r in best
    ]

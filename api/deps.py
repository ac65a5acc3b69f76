"""What every route needs, built once per process by the app's lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from agentfield_arq.core.approvals import Approvals
from agentfield_arq.core.broadcast import Broadcast
from agentfield_arq.core.changes import Changes
from agentfield_arq.core.completions import Completions
from agentfield_arq.core.credentials import Identity, KeyStore
from agentfield_arq.core.dispatch import CallbackProof
from agentfield_arq.core.memory import MemoryStore
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Outbox
from agentfield_arq.core.routing import HOME, Routes, merged_nodes, within_budget
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.core.tracing import Tracing
from agentfield_arq.core.vectors import VectorStore


@dataclass(frozen=True, slots=True)
class Shard:
    """The clients of one Redis deployment that holds executions and nodes (core/routing.py):
    its executions, nodes, webhook outbox, callback proofs, approvals and stream follower."""

    code: str
    redis: Redis
    store: ExecutionStore
    nodes: NodeRegistry
    completions: Completions
    broadcast: Broadcast
    outbox: Outbox
    proof: CallbackProof
    approvals: Approvals


@dataclass(frozen=True, slots=True)
class Shards:
    """Every Shard of the process, home first, and the table that routes to them. With one
    Redis (no routes), home is the only one and every lookup is home."""

    routes: Routes
    by_code: dict[str, Shard]

    @property
    def home(self) -> Shard:
        """The home Redis (`AGENTFIELD_ARQ_REDIS_URL`)."""
        return self.by_code[HOME]

    def __iter__(self) -> Iterator[Shard]:
        return iter(self.by_code.values())

    def for_node(self, node_id: str) -> Shard:
        """Where `node_id` registers and its new executions go."""
        return self.by_code[self.routes.of_node(node_id)]

    def store_of(self, node_id: str) -> ExecutionStore:
        """The store that `node_id`'s new executions go to."""
        return self.for_node(node_id).store

    def for_id(self, execution_id: str) -> Shard:
        """The shard `execution_id` names."""
        return self.by_code[self.routes.of_id(execution_id)]

    def candidates(self, execution_id: str) -> tuple[Shard, ...]:
        """Where to look for `execution_id`, in order: the shard it names, then home (an id
        made before the routes were set names a shard at random)."""
        named = self.for_id(execution_id)
        return (named,) if named.code == HOME else (named, self.home)

    async def nodes(self) -> list[dict[str, Any]]:
        """Every shard's registered nodes (`NodeRegistry.list`), read at once, by id; a node
        found on a shard that no longer takes it (the routes changed) is shown from the one
        that does."""
        if not self.routes.routed:
            return await self.home.nodes.list()
        found = await asyncio.gather(*(shard.nodes.list() for shard in self))
        return merged_nodes(self.routes, list(zip(self.by_code, found, strict=True)))

    async def views(self, ids: list[str], owner: Identity) -> list[bytes | None]:
        """batch-status's documents (`get_views`): each shard's ids in one round trip per Redis,
        all at once, and ids that the shard they name does not hold (made before the routes)
        asked of home after. An answer from more than one Redis is bounded by
        `batch_max_bytes` as a whole (`routing.within_budget`), not each part on its own."""
        if not self.routes.routed:
            return await self.home.store.get_views(ids, owner)
        asked: dict[str, list[str]] = {}
        for execution_id in ids:
            asked.setdefault(self.for_id(execution_id).code, []).append(execution_id)
        answers = await asyncio.gather(
            *(self.by_code[code].store.get_views(part, owner) for code, part in asked.items())
        )
        found: dict[str, bytes | None] = {}
        for part, docs in zip(asked.values(), answers, strict=True):
            found.update(zip(part, docs, strict=True))
        again = [i for i in ids if found[i] is None and self.for_id(i).code != HOME]
        if again:
            found.update(zip(again, await self.home.store.get_views(again, owner), strict=True))
        docs = [found[i] for i in ids]
        if len(asked) == 1 and not again:
            return docs
        return within_budget(docs, self.home.store.settings.batch_max_bytes)

    async def parent_store(self, parent_id: str | None, child: Shard) -> ExecutionStore | None:
        """The store holding a child's parent (`X-Parent-Execution-ID`) when it is another
        Redis than the child's `child` (core/lineage.py); None with one Redis, or none named."""
        if not self.routes.routed or not parent_id:
            return None
        holder = await self.holding(parent_id)
        return None if holder is child else holder.store

    async def holding(self, execution_id: str) -> Shard:
        """The shard that holds `execution_id`: the one it names if that one has its record,
        else home (one EXISTS, only for an id naming a shard other than home)."""
        named, *rest = self.candidates(execution_id)
        if not rest or await named.redis.exists(named.store.keys.execution(execution_id)):
            return named
        return self.home


@dataclass(frozen=True, slots=True)
class Deps:
    """The process's shared clients; yielded by the lifespan as typed state. `redis`,
    `store`, `nodes`... are home's (API keys, memory and everything not routed live there);
    `shards` routes executions and nodes to their own Redis."""

    settings: Settings
    redis: Redis
    store: ExecutionStore
    nodes: NodeRegistry
    completions: Completions
    broadcast: Broadcast
    changes: Changes
    outbox: Outbox
    credentials: KeyStore
    proof: CallbackProof
    memory: MemoryStore
    vectors: VectorStore
    approvals: Approvals
    tracing: Tracing
    shards: Shards


def deps(connection: HTTPConnection) -> Deps:
    """The Deps of the app serving a request (or a WebSocket)."""
    value: Deps = connection.scope["state"]["deps"]  # `connection.state` wraps it anew each time
    return value

"""What every route needs, built once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from agentfield_arq.core.approvals import Approvals
from agentfield_arq.core.broadcast import Broadcast
from agentfield_arq.core.changes import Changes
from agentfield_arq.core.completions import Completions
from agentfield_arq.core.credentials import KeyStore
from agentfield_arq.core.dispatch import CallbackProof
from agentfield_arq.core.memory import MemoryStore
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Outbox
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.core.tracing import Tracing
from agentfield_arq.core.vectors import VectorStore


@dataclass(frozen=True, slots=True)
class Deps:
    """The process's shared clients; yielded by the lifespan as typed state."""

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


def deps(connection: HTTPConnection) -> Deps:
    """The Deps of the app serving a request (or a WebSocket)."""
    value: Deps = connection.state.deps
    return value

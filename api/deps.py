"""What every route needs, built once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import Request

from agentfield_arq.core.completions import Completions
from agentfield_arq.core.credentials import KeyStore
from agentfield_arq.core.dispatch import CallbackProof
from agentfield_arq.core.nodes import NodeRegistry
from agentfield_arq.core.outbox import Outbox
from agentfield_arq.core.settings import Settings
from agentfield_arq.core.store import ExecutionStore
from agentfield_arq.core.tracing import Tracing


@dataclass(frozen=True, slots=True)
class Deps:
    """The process's shared clients; yielded by the lifespan as typed state."""

    settings: Settings
    redis: Redis
    store: ExecutionStore
    nodes: NodeRegistry
    completions: Completions
    outbox: Outbox
    credentials: KeyStore
    proof: CallbackProof
    tracing: Tracing


def deps(request: Request) -> Deps:
    """The Deps of the app serving `request`."""
    value: Deps = request.state.deps
    return value

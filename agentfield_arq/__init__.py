"""agentfield-arq: a Redis-backed deferred-execution control plane for AgentField-style agents,
and the SDK to write agents (`Agent`) and callers (`AsyncClient`, `Client`) for it."""

from agentfield_arq.agent import Agent
from agentfield_arq.answers import Execution, Submitted
from agentfield_arq.client import AsyncClient, Client
from agentfield_arq.context import ExecutionContext, current
from agentfield_arq.errors import (
    AgentFieldArqError,
    ApiError,
    ClientError,
    ControlPlaneUnreachable,
    ExecutionCancelled,
    ExecutionError,
    ExecutionFailed,
    ExecutionNotFound,
    ExecutionTimedOut,
    WaitTimeout,
)
from agentfield_arq.models import WebhookEvent

__version__ = "0.1.0"

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
    "Submitted",
    "WaitTimeout",
    "WebhookEvent",
    "__version__",
    "current",
]

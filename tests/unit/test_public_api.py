"""The names `agentfield_arq` exports are a promise: changing them must be deliberate."""

from __future__ import annotations

import agentfield_arq


def test_the_exported_names_are_exactly_these() -> None:
    assert sorted(agentfield_arq.__all__) == [
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


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in agentfield_arq.__all__:
        value = getattr(agentfield_arq, name)
        if name != "__version__":
            assert value.__doc__, name

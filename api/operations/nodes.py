"""The node routes: registration, liveness, and what agents report beside executions."""

from __future__ import annotations

from agentfield_arq.api import nodes, system
from agentfield_arq.api.access import Access
from agentfield_arq.api.openapi import Operation
from agentfield_arq.api.operations.common import ACK, BODY, PREFIX, REDIS
from agentfield_arq.kernel.errors import InvalidBaseUrl, InvalidTarget, NodeNotFound, NotSupported
from agentfield_arq.kernel.models import (
    ExecutionLogs,
    HeartbeatRequest,
    Node,
    NodeList,
    NodeRegistered,
    NodeRegistration,
    ShutdownRequest,
    TelemetryEvent,
)

_BEAT_ERRORS = (*BODY, NodeNotFound, *REDIS)

OPERATIONS: list[Operation] = [
    *(
        Operation(
            "POST",
            path,
            nodes.register,
            "Register an agent node",
            {201: ("registered", NodeRegistered)},
            body=NodeRegistration,
            errors=(*BODY, InvalidTarget, InvalidBaseUrl, *REDIS),
            access=Access.AGENT,
        )
        for path in (f"{PREFIX}/nodes/register", f"{PREFIX}/nodes")  # the contract's alias
    ),
    Operation(
        "GET",
        f"{PREFIX}/nodes",
        nodes.list_nodes,
        "Every registered node with its liveness",
        {200: ("the registry", NodeList)},
        errors=REDIS,
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/nodes/{{node_id}}",
        nodes.get_node,
        "One node with its liveness",
        {200: ("the node", Node)},
        errors=(NodeNotFound, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/nodes/{{node_id}}/heartbeat",
        nodes.heartbeat,
        "Node heartbeat",
        ACK,
        body=HeartbeatRequest,
        body_required=False,
        errors=_BEAT_ERRORS,
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/nodes/{{node_id}}/shutdown",
        nodes.shutdown,
        "The node goes away: kept, marked stopped, reported inactive",
        ACK,
        body=ShutdownRequest,
        body_required=False,
        errors=(*BODY, NodeNotFound, *REDIS),
        access=Access.AGENT,
    ),
    *(
        Operation(
            method,
            f"{PREFIX}/nodes/{{node_id}}/status",
            nodes.lifecycle,
            "The SDK's lifecycle update, recorded like a heartbeat",
            ACK,
            body=HeartbeatRequest,
            body_required=False,
            errors=_BEAT_ERRORS,
            access=Access.AGENT,
        )
        for method in ("PATCH", "PUT")
    ),
    Operation(
        "POST",
        f"{PREFIX}/workflow/executions/events",
        system.telemetry,
        "SDK telemetry (never authoritative)",
        ACK,
        body=TelemetryEvent,
        errors=(*BODY, *REDIS),
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/logs",
        system.execution_logs,
        "An agent's execution log records (AgentField SDK; never authoritative)",
        ACK,
        body=ExecutionLogs,
        errors=(*BODY, *REDIS),
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/did/register",
        system.did_register,
        "AgentField's DID registration, which agentfield-arq does not offer",
        {},
        errors=(NotSupported,),
        access=Access.AGENT,
    ),
]

"""The OpenAPI 3.1 document, generated from the same msgspec Structs that decode the bodies."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.kernel.models import (
    BatchStatusRequest,
    CallbackRequest,
    DeadPage,
    ErrorBody,
    ExecuteRequest,
    Execution,
    ExecutionLogs,
    HeartbeatRequest,
    NodeRegistration,
    Redriven,
    Submitted,
    SyncResult,
    TelemetryEvent,
    WebhookSpec,
)

# (method, path, summary, request body, {status: (description, response body)})
_OPERATIONS: list[tuple[str, str, str, type | None, dict[int, tuple[str, type | None]]]] = [
    (
        "post",
        "/api/v1/execute/async/{target}",
        "Queue an execution",
        ExecuteRequest,
        {
            202: ("queued", Submitted),
            400: ("invalid body or target", ErrorBody),
            404: ("unknown target", ErrorBody),
            413: ("body too large", ErrorBody),
        },
    ),
    (
        "post",
        "/api/v1/execute/{target}",
        "Run an execution and wait for its end",
        ExecuteRequest,
        {
            200: ("terminal", SyncResult),
            400: ("invalid body or target", ErrorBody),
            404: ("unknown target", ErrorBody),
            504: ("still running at the sync limit", ErrorBody),
        },
    ),
    (
        "get",
        "/api/v1/executions/{execution_id}",
        "One execution",
        None,
        {200: ("the execution", Execution), 404: ("unknown id", ErrorBody)},
    ),
    (
        "post",
        "/api/v1/executions/batch-status",
        "Many executions in one call",
        BatchStatusRequest,
        {200: ("an object keyed by execution id", None), 400: ("too many ids", ErrorBody)},
    ),
    (
        "post",
        "/api/v1/executions/{execution_id}/status",
        "Agent callback",
        CallbackRequest,
        {
            200: ("the execution", Execution),
            404: ("unknown id", ErrorBody),
            409: ("already terminal", ErrorBody),
        },
    ),
    (
        "post",
        "/api/v1/executions/{execution_id}/cancel",
        "Cancel an execution that has not ended",
        None,
        {
            200: ("the execution, cancelled", Execution),
            404: ("unknown id", ErrorBody),
            409: ("already ended otherwise", ErrorBody),
        },
    ),
    (
        "post",
        "/api/v1/executions/{execution_id}/webhook/retry",
        "Send an execution's webhook again (same webhook-id)",
        None,
        {
            202: ("queued for delivery", Redriven),
            404: ("unknown id, or no webhook", ErrorBody),
            409: ("not terminal yet, or the last attempt is still closing", ErrorBody),
        },
    ),
    (
        "get",
        "/api/v1/webhooks/dead",
        "Dead webhook deliveries, newest first (?limit=, ?cursor=)",
        None,
        {200: ("one page", DeadPage), 400: ("invalid limit", ErrorBody)},
    ),
    (
        "post",
        "/api/v1/nodes/register",
        "Register an agent node",
        NodeRegistration,
        {201: ("registered", None), 400: ("invalid record", ErrorBody)},
    ),
    ("get", "/api/v1/nodes", "List nodes", None, {200: ("the registry", None)}),
    (
        "get",
        "/api/v1/nodes/{node_id}",
        "One node",
        None,
        {200: ("the node", None), 404: ("unknown node", ErrorBody)},
    ),
    (
        "post",
        "/api/v1/nodes/{node_id}/heartbeat",
        "Node heartbeat",
        HeartbeatRequest,
        {200: ("recorded", None), 404: ("unknown node", ErrorBody)},
    ),
    (
        "post",
        "/api/v1/workflow/executions/events",
        "SDK telemetry (never authoritative)",
        TelemetryEvent,
        {200: ("recorded", None)},
    ),
    (
        "post",
        "/api/v1/executions/{execution_id}/logs",
        "An agent's execution log records (AgentField SDK; never authoritative)",
        ExecutionLogs,
        {200: ("recorded", None), 400: ("not a JSON object of entries", ErrorBody)},
    ),
    (
        "post",
        "/api/v1/did/register",
        "AgentField's DID registration, which agentfield-arq does not offer",
        None,
        {501: ("not supported; create AgentField agents with enable_did=False", ErrorBody)},
    ),
    (
        "get",
        "/api/v1/health",
        "Health",
        None,
        {200: ("Redis answers", None), 503: ("Redis does not answer", None)},
    ),
]


def build() -> dict[str, Any]:
    """The whole OpenAPI document."""
    structs = {
        t
        for *_, body, answers in _OPERATIONS
        for t in [body, *(r for _, r in answers.values())]
        if t
    }
    schemas, components = msgspec.json.schema_components(
        sorted(structs | {WebhookSpec}, key=lambda t: t.__name__),
        ref_template="#/components/schemas/{name}",
    )
    by_type = dict(
        zip(sorted(structs | {WebhookSpec}, key=lambda t: t.__name__), schemas, strict=True)
    )
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, answers in _OPERATIONS:
        op: dict[str, Any] = {"summary": summary, "responses": {}}
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if body is not None:
            op["requestBody"] = {
                "required": method != "post" or body is not HeartbeatRequest,
                "content": {"application/json": {"schema": by_type[body]}},
            }
        for status, (description, answer) in answers.items():
            response: dict[str, Any] = {"description": description}
            if answer is not None:
                response["content"] = {"application/json": {"schema": by_type[answer]}}
            op["responses"][str(status)] = response
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "agentfield-arq", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": components},
    }


_DOCUMENT = msgspec.json.encode(build())


async def document(request: Request) -> Response:
    """Serve the OpenAPI document."""
    return Response(_DOCUMENT, media_type="application/json")

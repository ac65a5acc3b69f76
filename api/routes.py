"""The route table and the OpenAPI document, both built from one list of operations.

Operations on the same path become one Starlette route that dispatches on the method, so that
a 405 names every method the path serves. Each operation lists the error classes its endpoint
can raise; the document turns them into statuses through `http_status`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from agentfield_arq.api import (
    approvals,
    changes,
    discovery,
    events,
    executions,
    listing,
    memory,
    metrics,
    nodes,
    openapi,
    system,
    webhooks,
)
from agentfield_arq.api.access import Access, authenticate
from agentfield_arq.api.openapi import PATH_SCHEMAS, EventStream, Operation, Query
from agentfield_arq.kernel.errors import (
    ApprovalNotFound,
    ExecutionExpired,
    ExecutionNotFound,
    ExecutionNotTerminal,
    Forbidden,
    IdempotencyKeyReused,
    InvalidBaseUrl,
    InvalidRequest,
    InvalidTarget,
    InvalidTransition,
    JsonTooDeep,
    MemoryNotFound,
    MemoryScopeFull,
    MemoryValueTooLarge,
    NodeNotFound,
    NodeUnavailable,
    NotReady,
    NotReplicated,
    NotSupported,
    PayloadTooLarge,
    QueueFull,
    RequestTimeout,
    RunNotFound,
    SyncTimeout,
    TargetNotFound,
    TooManyIds,
    Unavailable,
    WebhookBusy,
    WebhookNotFound,
)
from agentfield_arq.kernel.memory import (
    MemoryChangeEvent,
    MemoryKeyRequest,
    MemoryRecord,
    MemorySetRequest,
    VectorDeleted,
    VectorHit,
    VectorSearchRequest,
    VectorSetRequest,
    VectorStored,
)
from agentfield_arq.kernel.models import (
    Acknowledged,
    Approval,
    ApprovalRequest,
    ApprovalRequested,
    AwaiterStatusRequest,
    BatchStatusRequest,
    CallbackRequest,
    CancelRequest,
    DeadPage,
    Decision,
    ExecuteRequest,
    Execution,
    ExecutionLogs,
    ExecutionPage,
    Health,
    HeartbeatRequest,
    Node,
    NodeList,
    NodeRegistered,
    NodeRegistration,
    NoteAdded,
    NoteList,
    NoteRequest,
    Redriven,
    Restarted,
    RestartRequest,
    Run,
    ShutdownRequest,
    Submitted,
    SyncResult,
    TelemetryEvent,
)
from agentfield_arq.kernel.status import Status

PREFIX = "/api/v1"
# What every endpoint that reads a body can answer, and every one that touches Redis
# (api/errors.py answers any Redis connection error as Unavailable).
BODY = (InvalidRequest, JsonTooDeep, PayloadTooLarge, RequestTimeout)
REDIS = (Unavailable,)
# What every endpoint that acknowledges a state change can answer besides (REDIS_WAIT_REPLICAS).
DURABLE = (*REDIS, NotReplicated)


async def document(request: Request) -> Response:
    """Serve the OpenAPI document of OPERATIONS."""
    return Response(_document(), media_type="application/json")


@functools.cache
def _document() -> bytes:
    return msgspec.json.encode(openapi.build(OPERATIONS))


# Generic answers are documented bare: msgspec names the component of `Execution` "Execution",
# that of `Execution[Any]` "Execution_Any_".
EXECUTIONS_BY_ID = dict[str, Execution]  # type: ignore[type-arg]
_ACK = {200: ("recorded", Acknowledged)}
_BEAT_ERRORS = (*BODY, NodeNotFound, *REDIS)
_HEALTH = {200: ("Redis answers", Health)}
_DETAIL = (Query("detail", "1 adds the counts", {"enum": ["0", "1", "false", "true"]}),)
_DEAD_QUERY = (
    Query(
        "limit",
        "page size",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": webhooks.MAX_PAGE,
            "default": webhooks.DEFAULT_PAGE,
        },
    ),
    Query(
        "cursor",
        "the `next_cursor` of the previous page",
        {"type": "string", "maxLength": webhooks.MAX_CURSOR},
    ),
)

_DISCOVERY_QUERY = (
    Query("format", "json (default) or compact", {"type": "string", "enum": ["json", "compact"]}),
    *(
        Query(name, about, {"type": "string"})
        for name, about in (
            ("agent", "one node id"),
            ("agent_ids", "node ids, comma-separated"),
            ("reasoner", "a reasoner name or glob pattern; leaves skills out"),
            ("skill", "a skill name or glob pattern; leaves reasoners out"),
            ("tags", "tags or glob patterns, comma-separated: any one matches"),
            ("health_status", "healthy or inactive"),
        )
    ),
    *(
        Query(f"include_{name}", f"include {name.replace('_', ' ')}", {"type": "boolean"})
        for name in ("input_schema", "output_schema", "descriptions", "examples")
    ),
    Query("limit", "nodes per page", {"type": "integer", "minimum": 1, "maximum": 1000}),
    Query("offset", "nodes to skip", {"type": "integer", "minimum": 0, "maximum": 10**9}),
)
_EVENTS_QUERY = (
    Query("scope", "only changes of this scope", {"type": "string"}),
    Query("scope_id", "only changes of this scope id", {"type": "string"}),
    Query("patterns", "key globs, comma-separated (`user.*`): any one matches", {"type": "string"}),
    Query(
        "max_s",
        "end the stream after this many seconds (default: never)",
        {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9},
    ),
)
_HISTORY_QUERY = (
    Query(
        "since",
        "only changes made at or after this RFC 3339 time (ignored if it is not one)",
        {"type": "string"},
    ),
    Query(
        "limit",
        "at most this many (the newest)",
        {"type": "integer", "minimum": 1, "maximum": 1000},
    ),
)
MEMORY = (Forbidden, *REDIS)
_MEMORY_WRITE = (*BODY, MemoryNotFound, MemoryValueTooLarge, MemoryScopeFull, *MEMORY)
_SCOPE_QUERY = Query(
    "scope",
    "the scope: global, session, actor or workflow (its id is read from the headers)",
    {"type": "string", "enum": ["global", "session", "actor", "workflow"]},
)
MEMORY_OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        f"{PREFIX}/memory/set",
        memory.set_value,
        "Store a memory value in a scope (X-Workflow-ID, X-Session-ID, X-Actor-ID name them)",
        {200: ("stored", MemoryRecord)},
        body=MemorySetRequest,
        errors=_MEMORY_WRITE,
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/memory/get",
        memory.get_value,
        "A memory value: from the scope named, else workflow, session, actor, then global",
        {200: ("found", MemoryRecord)},
        body=MemoryKeyRequest,
        errors=(*BODY, MemoryNotFound, *MEMORY),
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/memory/delete",
        memory.delete_value,
        "Delete a memory value (204 whether or not it was stored)",
        {204: ("deleted", None)},
        body=MemoryKeyRequest,
        errors=(*BODY, MemoryNotFound, *MEMORY),
        access=Access.AGENT,
    ),
    Operation(
        "GET",
        f"{PREFIX}/memory/list",
        memory.list_values,
        "Every memory value of one scope, by key",
        {200: ("the scope's records", list[MemoryRecord])},
        query=(_SCOPE_QUERY,),
        errors=(InvalidRequest, *MEMORY),
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/memory/vector/set",
        memory.set_vector,
        "Store a vector embedding with its metadata",
        {200: ("stored", VectorStored)},
        body=VectorSetRequest,
        errors=_MEMORY_WRITE,
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/memory/vector/delete",
        memory.delete_vector,
        "Delete a vector (the same answer whether or not it was stored)",
        {200: ("deleted", VectorDeleted)},
        body=MemoryKeyRequest,
        errors=(*BODY, MemoryNotFound, *MEMORY),
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/memory/vector/search",
        memory.search_vectors,
        "The vectors of one scope most similar to a query (cosine, exact), best first",
        {200: ("the best matches", list[VectorHit])},
        body=VectorSearchRequest,
        errors=(*BODY, MemoryNotFound, *MEMORY),
        access=Access.AGENT,
    ),
    Operation(
        "GET",
        f"{PREFIX}/memory/events/sse",
        changes.events,
        "Memory changes as Server-Sent Events (the WebSocket /memory/events/ws sends the same)",
        {200: ("`event: message`, `data:` one MemoryChangeEvent, per change", EventStream)},
        query=_EVENTS_QUERY,
        errors=(InvalidRequest, *REDIS),
        access=Access.AGENT,
    ),
    Operation(
        "GET",
        f"{PREFIX}/memory/events/history",
        changes.past,
        "Recent memory changes, oldest first",
        {200: ("the changes", list[MemoryChangeEvent])},
        query=(*_EVENTS_QUERY[:3], *_HISTORY_QUERY),
        errors=(InvalidRequest, *REDIS),
        access=Access.AGENT,
    ),
]
# Not in the OpenAPI document, which has no words for it; docs/contract.md describes it.
SOCKETS = [WebSocketRoute(f"{PREFIX}/memory/events/ws", changes.socket)]

AGENT_EXECUTION = f"{PREFIX}/agents/{{node_id}}/executions/{{execution_id}}"
_APPROVAL = (Forbidden, ExecutionNotFound, *REDIS)
APPROVAL_OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        f"{AGENT_EXECUTION}/request-approval",
        approvals.request_approval,
        "The running execution waits for a person's approval, holding no worker slot",
        {200: ("waiting", ApprovalRequested)},
        body=ApprovalRequest,
        errors=(*BODY, InvalidTransition, *_APPROVAL),
        access=Access.AGENT,
    ),
    Operation(
        "GET",
        f"{AGENT_EXECUTION}/approval-status",
        approvals.approval_status,
        "Where the execution's approval stands: pending, approved, rejected or expired",
        {200: ("the approval", Approval)},
        errors=(ApprovalNotFound, *_APPROVAL),
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{AGENT_EXECUTION}/awaiter-status",
        approvals.awaiter_status,
        "The execution waits (or runs again) because a child it awaits waits",
        {200: ("the execution", Execution)},
        body=AwaiterStatusRequest,
        errors=(*BODY, InvalidTransition, *_APPROVAL),
        access=Access.AGENT,
    ),
    *(
        Operation(
            "POST",
            f"{PREFIX}/executions/{{execution_id}}/{verb}",
            endpoint,
            summary,
            {200: ("the approval, decided", Approval)},
            body=Decision,
            body_required=False,
            errors=(*BODY, ApprovalNotFound, InvalidTransition, *_APPROVAL),
            access=Access.CALLER,
        )
        for verb, endpoint, summary in (
            ("approve", approvals.approve, "A person approves: the execution runs on"),
            ("reject", approvals.reject, "A person rejects: the execution fails"),
        )
    ),
]

_EXECUTE_ERRORS = (
    *BODY,
    InvalidTarget,
    IdempotencyKeyReused,
    TargetNotFound,
    ExecutionExpired,
    QueueFull,
    NodeUnavailable,
)
_GONE = (ExecutionNotFound, ExecutionExpired)
_SSE = (
    "`text/event-stream`: each event's `id` is its stream id, its name the status (or `state`, "
    "`gap`, `cutoff`), its data JSON; comment lines are heartbeats"
)
# As strict as api/listing.py checks them (the fuzz run draws from these). `since` and `until`
# are documented as unix ms, the plain subset of what is accepted (an RFC 3339 time too).
_UNIX_MS = {"type": "string", "pattern": "^[0-9]{1,15}$"}
_LIST_QUERY = (
    Query("status", "only executions now in this status", {"enum": [str(s) for s in Status]}),
    Query("target", "only executions of this target (`node_id.name`)", PATH_SCHEMAS["target"]),
    Query("node", "only executions of this node's targets", PATH_SCHEMAS["node_id"]),
    Query("run_id", "only executions of this run", PATH_SCHEMAS["run_id"]),
    Query("parent", "only the children of this execution id", PATH_SCHEMAS["execution_id"]),
    Query("since", "created at or after: unix ms (or an RFC 3339 time)", _UNIX_MS),
    Query("until", "created at or before: unix ms (or an RFC 3339 time)", _UNIX_MS),
    Query(
        "limit",
        "page size",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": listing.MAX_PAGE,
            "default": listing.DEFAULT_PAGE,
        },
    ),
    Query("cursor", "the `next_cursor` of the previous page", PATH_SCHEMAS["execution_id"]),
)

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        f"{PREFIX}/execute/async/{{target}}",
        executions.execute_async,
        "Queue an execution",
        {202: ("queued; durable before this answer", Submitted)},
        body=ExecuteRequest,
        errors=(*_EXECUTE_ERRORS, *DURABLE),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/execute/{{target}}",
        executions.execute_sync,
        "Run an execution and wait for its end",
        {200: ("terminal", SyncResult)},
        body=ExecuteRequest,
        errors=(*_EXECUTE_ERRORS, *DURABLE, SyncTimeout),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/batch-status",
        executions.batch_status,
        "Many executions in one call; an unknown id's status is `not_found`",
        {200: ("an object keyed by execution id", EXECUTIONS_BY_ID)},
        body=BatchStatusRequest,
        errors=(*BODY, TooManyIds, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/note",
        executions.add_note,
        "An agent's note on the execution its X-Execution-ID names (AgentField's app.note)",
        {200: ("stored", NoteAdded)},
        body=NoteRequest,
        errors=(*BODY, ExecutionNotFound, *REDIS),
        access=Access.AGENT,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions/{{execution_id}}/notes",
        executions.list_notes,
        "An execution's notes, oldest first",
        {200: ("the notes", NoteList)},
        errors=(ExecutionNotFound, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions",
        listing.list_executions,
        "Executions, newest first, filtered; a page may be short and still have a next one",
        {200: ("one page", ExecutionPage)},
        query=_LIST_QUERY,
        errors=(InvalidRequest, *REDIS),
        access=Access.ADMIN,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions/{{execution_id}}/events",
        events.execution_events,
        "One execution's lifecycle as server-sent events (resumable with Last-Event-ID); "
        "ends after its terminal event",
        {200: (_SSE, None)},
        errors=(InvalidRequest, *_GONE, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/events",
        events.all_events,
        "Every execution's lifecycle as server-sent events, filtered (resumable with "
        "Last-Event-ID)",
        {200: (_SSE, None)},
        query=tuple(q for q in _LIST_QUERY if q.name in ("status", "target", "run_id")),
        errors=(InvalidRequest, *REDIS),
        access=Access.ADMIN,
    ),
    Operation(
        "GET",
        f"{PREFIX}/runs/{{run_id}}",
        listing.get_run,
        "A run's executions as a tree, with statuses and timings",
        {200: ("the run", Run)},
        errors=(RunNotFound, *REDIS),
        access=Access.ADMIN,
    ),
    Operation(
        "GET",
        f"{PREFIX}/executions/{{execution_id}}",
        executions.get_one,
        "One execution; with `wait`, answered when it ends (or when the wait runs out)",
        {200: ("the execution", Execution)},
        query=(
            Query(
                "wait",
                "seconds to wait for the end before answering",
                {"type": "integer", "minimum": 0, "maximum": executions.MAX_WAIT_S, "default": 0},
            ),
        ),
        errors=(InvalidRequest, *_GONE, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/status",
        executions.callback,
        "An agent reports an execution's progress or outcome",
        {200: ("the execution", Execution)},
        body=CallbackRequest,
        errors=(*BODY, ExecutionNotFound, InvalidTransition, *DURABLE),
        access=Access.REPORT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/cancel",
        executions.cancel_one,
        "Cancel an execution that has not ended, its agent told, its descendants too",
        {200: ("the execution, cancelled", Execution)},
        body=CancelRequest,
        body_required=False,
        errors=(*BODY, *_GONE, InvalidTransition, *DURABLE),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/retry",
        executions.retry_one,
        "Run a finished execution again, as a new execution linked by `retry_of`",
        {202: ("the new execution, queued", Submitted)},
        errors=(
            *_GONE,
            ExecutionNotTerminal,
            TargetNotFound,
            InvalidTransition,
            QueueFull,
            NodeUnavailable,
            *DURABLE,
        ),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/restart",
        executions.restart_one,
        "Submit an ended execution again as a new execution in a new run",
        {202: ("the new execution, queued", Restarted)},
        body=RestartRequest,
        body_required=False,
        errors=(*BODY, ExecutionNotFound, ExecutionNotTerminal, TargetNotFound, QueueFull, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/webhook/retry",
        webhooks.retry,
        "Send an execution's webhook again (same webhook-id)",
        {202: ("queued for delivery", Redriven)},
        errors=(ExecutionNotFound, WebhookNotFound, ExecutionNotTerminal, WebhookBusy, *REDIS),
        access=Access.ADMIN,
    ),
    Operation(
        "GET",
        f"{PREFIX}/webhooks/dead",
        webhooks.dead,
        "Dead webhook deliveries, newest first",
        {200: ("one page", DeadPage)},
        query=_DEAD_QUERY,
        errors=(InvalidRequest, *REDIS),
        access=Access.ADMIN,
    ),
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
        _ACK,
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
        _ACK,
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
            _ACK,
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
        _ACK,
        body=TelemetryEvent,
        errors=(*BODY, *REDIS),
        access=Access.AGENT,
    ),
    Operation(
        "POST",
        f"{PREFIX}/executions/{{execution_id}}/logs",
        system.execution_logs,
        "An agent's execution log records (AgentField SDK; never authoritative)",
        _ACK,
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
    *MEMORY_OPERATIONS,
    *APPROVAL_OPERATIONS,
    Operation(
        "GET",
        f"{PREFIX}/discovery/capabilities",
        discovery.capabilities,
        "Which nodes offer which reasoners and skills (AgentField's discovery)",
        {200: ("json: a `Discovery` page of nodes; compact: a `CompactDiscovery`", dict[str, Any])},
        query=_DISCOVERY_QUERY,
        errors=(InvalidRequest, NotSupported, *REDIS),
        access=Access.CALLER,
    ),
    Operation(
        "GET",
        f"{PREFIX}/health",
        system.health,
        "Health; with `detail=1`, the queue, the workers alive and the active nodes",
        _HEALTH,
        query=_DETAIL,
        errors=(InvalidRequest, *REDIS),
        access=Access.PUBLIC,
    ),
    Operation(
        "GET",
        "/health",
        system.health,
        "Liveness (as /api/v1/health)",
        _HEALTH,
        query=_DETAIL,
        errors=(InvalidRequest, *REDIS),
        access=Access.PUBLIC,
    ),
    Operation(
        "GET",
        "/ready",
        system.ready,
        "Readiness: Redis answers and a worker is alive; with the queue and node counts",
        {200: ("ready", Health)},
        errors=(NotReady, *REDIS),
        access=Access.PUBLIC,
    ),
    Operation(
        "GET",
        "/metrics",
        metrics.metrics,
        "Prometheus metrics of the whole deployment (text format 0.0.4), read from Redis",
        {200: ("`text/plain; version=0.0.4`: the metrics docs/contract.md lists", None)},
        errors=REDIS,
        access=Access.ADMIN,
    ),
    Operation(
        "GET",
        "/openapi.json",
        document,
        "This document",
        {200: ("the OpenAPI 3.1 document", dict[str, Any])},
        access=Access.PUBLIC,
    ),
]


class PathRoute(Route):
    """A path and its operations, one endpoint per method; a 405 lists every method, sorted."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch to the method's endpoint, or answer 405 naming those the path serves."""
        if self.methods and scope["method"] not in self.methods:
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(self.methods))})
        await self.app(scope, receive, send)


class _ByMethod:
    """The ASGI app of one path: each method's endpoint, wrapped as Starlette wraps one alone
    (so that the app's exception handlers answer its errors)."""

    def __init__(self, endpoints: Mapping[str, openapi.Endpoint]) -> None:
        self.apps: dict[str, ASGIApp] = {m: request_response(e) for m, e in endpoints.items()}
        if "GET" in self.apps:  # as Starlette does: HEAD is GET without the body
            self.apps.setdefault("HEAD", self.apps["GET"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.apps[scope["method"]](scope, receive, send)


def table(operations: Iterable[Operation] = OPERATIONS) -> list[Route]:
    """One route per path, in the order the paths first appear in `operations`."""
    paths: dict[str, dict[str, openapi.Endpoint]] = {}
    for op in operations:
        endpoints = paths.setdefault(op.path, {})
        if op.method in endpoints:
            raise ValueError(f"{op.method} {op.path} is listed twice")
        endpoints[op.method] = guarded(op)
    return [
        PathRoute(path, _ByMethod(endpoints), methods=list(endpoints), name=path)
        for path, endpoints in paths.items()
    ]


def guarded(op: Operation) -> openapi.Endpoint:
    """The operation's endpoint behind its access check (the identity found goes on the
    request's scope, where `access.identity` reads it)."""
    if op.access is Access.PUBLIC:
        return op.endpoint

    async def endpoint(request: Request) -> Response:
        request.scope["auth"] = await authenticate(request, op.access)
        return await op.endpoint(request)

    return endpoint

"""The memory routes: values, vectors, and the change events."""

from __future__ import annotations

from starlette.routing import WebSocketRoute

from agentfield_arq.api import changes, memory
from agentfield_arq.api.access import Access
from agentfield_arq.api.openapi import EventStream, Operation, Query
from agentfield_arq.api.operations.common import BODY, PREFIX, REDIS
from agentfield_arq.kernel.errors import (
    Forbidden,
    InvalidRequest,
    MemoryNotFound,
    MemoryScopeFull,
    MemoryValueTooLarge,
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

OPERATIONS: list[Operation] = [
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

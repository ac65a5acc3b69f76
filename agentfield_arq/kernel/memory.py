"""The wire shapes of memory: key-value records, vectors and change events, as AgentField's SDK
sends and reads them (`agentfield/memory.py`, `memory_events.py`) and its Go server answers.

A scope is one of `SCOPES`; its id comes from the request's headers (`SCOPE_HEADERS`), and the
global scope's id is always `global`. Without an explicit scope a write lands in the most
specific scope the headers carry, and a read walks `LOOKUP_ORDER`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

GLOBAL = "global"
SCOPES = ("global", "session", "actor", "workflow")
# Where the id of each scope is read from (the global scope's id is always "global").
SCOPE_HEADERS = {"workflow": "x-workflow-id", "session": "x-session-id", "actor": "x-actor-id"}
# A read without a scope: the first scope whose header is present and holds the key wins.
LOOKUP_ORDER = ("workflow", "session", "actor", "global")

# A key is 1 to 128 characters (at most 512 bytes); a scope one of SCOPES; vector numbers fit
# float32, as the Go server keeps them.
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
ScopeName = Literal["global", "session", "actor", "workflow"]
Number = Annotated[float, msgspec.Meta(ge=-3.0e38, le=3.0e38)]
Numbers = Annotated[list[Number], msgspec.Meta(min_length=1)]

# ---------------------------------------------------------------------------- key-value


class MemorySetRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /memory/set`: any JSON `data` (stored byte for byte, compacted)."""

    key: Key
    data: msgspec.Raw
    scope: ScopeName | None = None


class MemoryKeyRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /memory/get` and `POST /memory/delete`."""

    key: Key
    scope: ScopeName | None = None


class MemoryRecord(msgspec.Struct, kw_only=True):
    """One stored value, as set, get and list answer it (the Go server's `Memory`)."""

    created_at: str
    updated_at: str
    key: str
    scope: str
    scope_id: str
    data: Any = None


# ---------------------------------------------------------------------------- vectors


class VectorSetRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /memory/vector/set`."""

    key: Key
    embedding: Numbers
    metadata: dict[str, Any] | None = None
    scope: ScopeName | None = None


class VectorSearchRequest(msgspec.Struct, kw_only=True):
    """Body of `POST /memory/vector/search`; `top_k` <= 0 means 10, as in the Go server.
    `filters` keeps the vectors whose metadata has each of its fields with the same value."""

    query_embedding: Numbers
    top_k: int = 10
    filters: dict[str, Any] | None = None
    scope: ScopeName | None = None


class VectorRecord(msgspec.Struct, kw_only=True):
    """One stored vector's record (its unit vector is kept apart, packed) with its norm."""

    created_at: str
    updated_at: str
    key: str
    scope: str
    scope_id: str
    metadata: dict[str, Any] = {}
    norm: float = 0.0


class VectorStored(msgspec.Struct, kw_only=True):
    """The answer of `POST /memory/vector/set`."""

    key: str
    scope: str
    scope_id: str
    metadata: dict[str, Any] | None = None


class VectorDeleted(msgspec.Struct, kw_only=True):
    """The answer of `POST /memory/vector/delete`."""

    status: str = "deleted"


class VectorHit(msgspec.Struct, kw_only=True):
    """One result of a search: cosine similarity `score`, and `distance` = 1 - score."""

    scope: str
    scope_id: str
    key: str
    score: float
    distance: float
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


# ---------------------------------------------------------------------------- change events


class MemoryEventMetadata(msgspec.Struct, kw_only=True):
    """Who made a change: the request's `X-Actor-ID` and `X-Workflow-ID` (Go's names)."""

    agent_id: str = ""
    workflow_id: str = ""


class MemoryChangeEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One change, as the WebSocket, SSE and history routes send it; `id` is the entry's id in
    the memory event stream, `data` the new value (absent on delete)."""

    id: str
    type: str = "memory_change"
    timestamp: str
    scope: str
    scope_id: str
    key: str
    action: str
    # JSON values: the control plane passes them through as `msgspec.Raw`.
    data: Any = None
    previous_data: Any = None
    metadata: MemoryEventMetadata = msgspec.field(default_factory=MemoryEventMetadata)

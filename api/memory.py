"""Memory routes: AgentField's key-value (`/memory/set|get|delete|list`) and vector
(`/memory/vector/set|delete|search`) memory, answered as its Go server answers them."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.body import read_json
from agentfield_arq.api.deps import deps
from agentfield_arq.api.owners import authorize_memory, writer
from agentfield_arq.core.memory import lookup, resolve, scope_id
from agentfield_arq.kernel.codec import encode
from agentfield_arq.kernel.memory import (
    MemoryKeyRequest,
    MemorySetRequest,
    VectorDeleted,
    VectorSearchRequest,
    VectorSetRequest,
    VectorStored,
)

JSON = "application/json"


def _json(content: bytes, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type=JSON)


async def set_value(request: Request) -> Response:
    """Store a value in the scope named, or the most specific one the headers carry."""
    d = deps(request)
    body = await read_json(request, MemorySetRequest, d.settings)
    scope = resolve(request.headers, body.scope)
    await authorize_memory(request, [scope])
    record = await d.memory.set(scope, body.key, bytes(body.data), await writer(request))
    return _json(record)


async def get_value(request: Request) -> Response:
    """A value from the scope named, or the first scope of the lookup order holding it."""
    d = deps(request)
    body = await read_json(request, MemoryKeyRequest, d.settings)
    scopes = [resolve(request.headers, body.scope)] if body.scope else lookup(request.headers)
    await authorize_memory(request, scopes)
    return _json(await d.memory.get(scopes, body.key))


async def delete_value(request: Request) -> Response:
    """Delete a value; 204 whether or not it was there."""
    d = deps(request)
    body = await read_json(request, MemoryKeyRequest, d.settings)
    scope = resolve(request.headers, body.scope)
    await authorize_memory(request, [scope])
    await d.memory.delete(scope, body.key, await writer(request))
    return Response(status_code=204)


async def list_values(request: Request) -> Response:
    """Every record of one scope: `?scope=` names it (its id from the headers), else the most
    specific scope the headers carry, where a write without a scope would land."""
    name = request.query_params.get("scope") or None
    if name is not None and scope_id(request.headers, name) is None:
        scopes = []  # a scope without its id holds nothing
    else:
        scopes = [resolve(request.headers, name)]
    await authorize_memory(request, scopes)
    records = await deps(request).memory.list_scope(scopes[0]) if scopes else []
    return _json(encode([msgspec.Raw(r) for r in records]))


async def set_vector(request: Request) -> Response:
    """Store a vector embedding with its metadata."""
    d = deps(request)
    body = await read_json(request, VectorSetRequest, d.settings)
    scope = resolve(request.headers, body.scope)
    await authorize_memory(request, [scope])
    await d.vectors.set(scope, body.key, body.embedding, body.metadata)
    stored = VectorStored(key=body.key, scope=scope.name, scope_id=scope.id, metadata=body.metadata)
    return _json(encode(stored))


async def delete_vector(request: Request) -> Response:
    """Delete a vector; the same answer whether or not it was there."""
    d = deps(request)
    body = await read_json(request, MemoryKeyRequest, d.settings)
    scope = resolve(request.headers, body.scope)
    await authorize_memory(request, [scope])
    await d.vectors.delete(scope, body.key)
    return _json(encode(VectorDeleted()))


async def search_vectors(request: Request) -> Response:
    """The most similar vectors of one scope, best first (cosine similarity, exact)."""
    d = deps(request)
    body = await read_json(request, VectorSearchRequest, d.settings)
    scope = resolve(request.headers, body.scope)
    await authorize_memory(request, [scope])
    hits = await d.vectors.search(scope, body.query_embedding, body.top_k, body.filters)
    return _json(encode(hits))

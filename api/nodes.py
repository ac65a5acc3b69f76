"""Node routes: register, heartbeat, shutdown, lifecycle status, list, get."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.access import identity
from agentfield_arq.api.body import decode, read_body, read_json
from agentfield_arq.api.deps import deps
from agentfield_arq.core.credentials import KeyStore
from agentfield_arq.core.recovery import node_restarted
from agentfield_arq.kernel.codec import encode
from agentfield_arq.kernel.models import (
    Acknowledged,
    HeartbeatRequest,
    NodeRegistered,
    NodeRegistration,
    ShutdownRequest,
)

JSON = "application/json"


def _json(value: object, status: int = 200) -> Response:
    return Response(encode(value), status_code=status, media_type=JSON)


async def register(request: Request) -> Response:
    """A node announces itself; the whole record is kept, unknown fields included."""
    d = deps(request)
    body = await read_body(request, d.settings.max_body_bytes)
    node = decode(body, NodeRegistration, d.settings.max_json_depth)
    # A node registers on the Redis its executions go to (core/routing.py).
    shard = d.shards.for_node(node.id)
    outcome = await shard.nodes.register(body, node, identity(request))
    if outcome.restarted:
        await node_restarted(shard.store, node.id, node.on_restart)
    registered = NodeRegistered(
        success=True,
        message=f"node '{node.id}' registered",
        node_id=node.id,
        resolved_base_url=outcome.base_url,
    )
    return _json(registered, 201)


async def heartbeat(request: Request) -> Response:
    """Refresh the node's lease; the body is optional."""
    d = deps(request)
    beat = await read_json(request, HeartbeatRequest, d.settings, optional=True)
    node_id = request.path_params["node_id"]
    nodes = d.shards.for_node(node_id).nodes
    stamp = await nodes.heartbeat(node_id, beat.status, identity(request))
    return _json(Acknowledged(success=True, message="heartbeat received", timestamp=stamp))


async def lifecycle(request: Request) -> Response:
    """The SDK's lifecycle update (`PATCH /nodes/{id}/status`): recorded like a heartbeat."""
    d = deps(request)
    beat = await read_json(request, HeartbeatRequest, d.settings, optional=True)
    node_id = request.path_params["node_id"]
    nodes = d.shards.for_node(node_id).nodes
    stamp = await nodes.heartbeat(node_id, beat.status, identity(request))
    return _json(Acknowledged(success=True, message="status updated", timestamp=stamp))


async def shutdown(request: Request) -> Response:
    """The node says goodbye: it is kept, marked stopped, and reported inactive."""
    d = deps(request)
    await read_json(request, ShutdownRequest, d.settings, optional=True)
    node_id = request.path_params["node_id"]
    await d.shards.for_node(node_id).nodes.stop(node_id, identity(request))
    return _json(Acknowledged(success=True, message="shutdown recorded"))


async def list_nodes(request: Request) -> Response:
    """Every registered node with its liveness, lease and owner (a `NodeList`)."""
    d = deps(request)
    found = await d.shards.nodes()
    await _name_owners(d.credentials, found)
    # The views are dicts, not `Node`s: they keep the registration's unknown fields.
    return _json({"nodes": found, "count": len(found)})


async def get_node(request: Request) -> Response:
    """One node's record with its liveness, lease and owner (a `Node`, unknown registration
    fields kept)."""
    d = deps(request)
    node_id = request.path_params["node_id"]
    found = await d.shards.for_node(node_id).nodes.get(node_id)
    await _name_owners(d.credentials, [found])
    return _json(found)


async def _name_owners(credentials: KeyStore, views: list[dict[str, Any]]) -> None:
    names = await credentials.names(v["owner"] for v in views if v["owner"])
    for v in views:
        v["owner_name"] = names.get(v["owner"], "")

"""Who may touch memory and approvals: the ownership rules of these routes, in one place, over
the identity the access check put on the request (`api/access.py`) and the owners the core
records (a node's agent key, `Keys.node_owner`; an execution's submitting key, `owner`).

- memory: an `admin` key reaches every scope. An `agent` key reaches the global scope, and a
  workflow, session or actor scope only through an execution a node it owns runs: the request's
  `X-Execution-ID` must name an execution of such a node whose run, session or actor id is the
  scope's id (the headers AgentField's SDK sends from inside a reasoner). Caller keys are
  refused by the routes' access (`agent`). Of the memory change events an agent key gets those
  of the global scope and those made by nodes it owns.
- notes and approvals: writing a note, asking for approval, the awaiter status and the
  approval status are the running node's (the key owning it) or an admin's; approving and
  rejecting are an admin's or the key that submitted the execution. To any other key the
  execution is unknown (404), as the API answers another key's execution everywhere.
- restart: the key that submitted the execution, the agent key owning the node that ran it
  (AgentField's `restart_execution` is called from agents), or an admin.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import HTTPConnection, Request

from agentfield_arq.api.access import MISSING, Access, allows, presented_key
from agentfield_arq.api.deps import deps
from agentfield_arq.core.changes import Change
from agentfield_arq.core.credentials import ANONYMOUS_ADMIN, Identity, Lookup, Role
from agentfield_arq.core.keys import safe_id
from agentfield_arq.core.memory import Scope
from agentfield_arq.kernel.codec import text
from agentfield_arq.kernel.errors import ExecutionNotFound, Forbidden, RateLimited, Unauthorized
from agentfield_arq.kernel.memory import GLOBAL

_SCOPE_FIELD = {"workflow": "run_id", "session": "session_id", "actor": "actor_id"}


async def authenticate_socket(connection: HTTPConnection) -> Identity:
    """The access check of the memory event WebSocket, which Starlette routes outside the
    operations: an agent or admin key, as for the other memory routes (its identity is put on
    the connection, as the operations' check does)."""
    d = deps(connection)
    found: Identity | Lookup = ANONYMOUS_ADMIN
    if d.settings.auth:
        plain = presented_key(connection.headers)
        if plain is None:
            raise Unauthorized(MISSING)
        found = await d.credentials.lookup(plain)
        if found is Lookup.UNKNOWN:
            raise Unauthorized("the API key is unknown or revoked")
        if found is Lookup.LIMITED:
            raise RateLimited("the key sent more requests this second than it may")
    assert isinstance(found, Identity)
    if not allows(found.role, Access.AGENT):
        raise Forbidden(f"a {found.role} key may not follow memory changes")
    connection.scope["auth"] = found
    return found


def principal(connection: HTTPConnection) -> Identity | None:
    """The identity the access check found for a request (None where none ran)."""
    found = connection.scope.get("auth")
    return found if isinstance(found, Identity) else None


async def owns_node(connection: HTTPConnection, who: Identity, node_id: str) -> bool:
    """Whether `who` may act for `node_id`: an admin, or the agent key that owns it."""
    if who.is_admin:
        return True
    if who.role is not Role.AGENT or not safe_id(node_id):
        return False
    d = deps(connection)
    owner = await d.redis.get(d.store.keys.node_owner(node_id))
    return owner is not None and text(owner) == who.key_id


async def authorize_memory(request: Request, scopes: Iterable[Scope]) -> None:
    """Refuse (403) a memory request whose key may not reach every one of `scopes`."""
    who = principal(request)
    if who is None or who.is_admin:
        return
    if who.role is not Role.AGENT:
        raise Forbidden(f"key '{who.key_id}' ({who.role}) may not use memory")
    private = [s for s in scopes if s.name != GLOBAL]
    if not private:
        return
    execution_id = request.headers.get("x-execution-id", "")
    fields = await _execution_fields(request, execution_id, ["node_id", *_SCOPE_FIELD.values()])
    if not await owns_node(request, who, fields.get("node_id", "")):
        raise Forbidden(
            "memory scopes are reached through an execution a node of the key runs; "
            f"X-Execution-ID '{execution_id[:100]}' is not one"
        )
    for scope in private:
        if fields.get(_SCOPE_FIELD[scope.name]) != scope.id:
            raise Forbidden(f"scope {scope.name}: not the {scope.name} of this execution")


async def writer(request: Request) -> dict[str, str]:
    """Who a memory change is recorded as made by: the request's actor and workflow, and its
    `X-Agent-Node-ID` only when the key may act for that node (it decides who sees the change)."""
    who = principal(request)
    node_id = request.headers.get("x-agent-node-id", "")
    if who is not None and node_id and not await owns_node(request, who, node_id):
        node_id = ""
    return {
        "x-actor-id": request.headers.get("x-actor-id", ""),
        "x-workflow-id": request.headers.get("x-workflow-id", ""),
        "x-agent-node-id": node_id,
    }


class Visibility:
    """Which memory changes one subscriber sees: an admin every one, an agent those of the
    global scope and those made by nodes it owns (AgentField sends every change to everyone).
    A node's ownership is read once per subscriber."""

    def __init__(self, connection: HTTPConnection) -> None:
        self.connection = connection
        self.who = principal(connection)
        self._owned: dict[str, bool] = {}

    async def allows(self, item: Change) -> bool:
        """Whether the subscriber sees `item`."""
        who = self.who
        if who is None or who.is_admin:
            return True
        if who.role is not Role.AGENT:
            return False
        if item.event.scope == GLOBAL:
            return True
        if item.node_id not in self._owned:
            self._owned[item.node_id] = await owns_node(self.connection, who, item.node_id)
        return self._owned[item.node_id]


async def authorize_agent(request: Request, execution_id: str) -> None:
    """Answer an approval request, note or awaiter update not made for the execution's node as
    if the execution did not exist (404), as the API answers another key's execution."""
    who = principal(request)
    if who is None or who.is_admin:
        return
    fields = await _execution_fields(request, execution_id, ["node_id"])
    if not await owns_node(request, who, fields.get("node_id", "")):
        raise ExecutionNotFound(f"execution '{execution_id[:100]}' not found")


async def authorize_restart(request: Request, execution_id: str) -> None:
    """Answer a restart by a key that neither submitted the execution nor owns the node that
    ran it (nor is an admin's) as if the execution did not exist (404)."""
    who = principal(request)
    if who is None or who.is_admin:
        return
    fields = await _execution_fields(request, execution_id, ["owner", "node_id"])
    if fields.get("owner") == who.key_id:
        return
    if not await owns_node(request, who, fields.get("node_id", "")):
        raise ExecutionNotFound(f"execution '{execution_id[:100]}' not found")


async def authorize_decision(request: Request, execution_id: str) -> None:
    """Answer an approve or reject not made by an admin or the execution's submitter as if the
    execution did not exist (404)."""
    who = principal(request)
    if who is None or who.is_admin:
        return
    fields = await _execution_fields(request, execution_id, ["owner"])
    if fields.get("owner") != who.key_id:
        raise ExecutionNotFound(f"execution '{execution_id[:100]}' not found")


async def _execution_fields(
    request: HTTPConnection, execution_id: str, names: list[str]
) -> dict[str, str]:
    if not safe_id(execution_id):
        return {}
    shard = await deps(request).shards.holding(execution_id)
    values = await shard.redis.hmget(shard.store.keys.execution(execution_id), names)  # type: ignore[misc]  # redis-py's async stubs
    return {n: text(v) for n, v in zip(names, values, strict=True) if v is not None}

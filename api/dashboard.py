"""Reads the dashboard (`/ui`) makes beyond the other routes, open to any client: one
execution's input and stored history, the last hour of executions by status, and who the
request's key is (the dashboard shows each role what it may do)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.access import identity
from agentfield_arq.api.deps import deps
from agentfield_arq.core.activity import added, last_hour
from agentfield_arq.core.history import read_history, read_input
from agentfield_arq.core.rerun import missing
from agentfield_arq.kernel.codec import encode, now_ms
from agentfield_arq.kernel.models import Principal

JSON = "application/json"


async def execution_input(request: Request) -> Response:
    """The input the execution was submitted with, as stored (another key's: not found)."""
    d = deps(request)
    execution_id = request.path_params["execution_id"]
    store = (await d.shards.holding(execution_id)).store
    found = await read_input(store, execution_id, identity(request))
    if found is None:
        raise missing(store, execution_id)
    return Response(found, media_type=JSON)


async def execution_history(request: Request) -> Response:
    """The execution's lifecycle as stored, oldest first (another key's: not found)."""
    d = deps(request)
    execution_id = request.path_params["execution_id"]
    store = (await d.shards.holding(execution_id)).store
    found = await read_history(store, execution_id, identity(request))
    if found is None:
        raise missing(store, execution_id)
    return Response(encode(found), media_type=JSON)


async def activity(request: Request) -> Response:
    """The executions created in each minute of the last hour, by their status now."""
    d, now = deps(request), now_ms()
    hours = await asyncio.gather(*(last_hour(s.redis, s.store.keys, now) for s in d.shards))
    return Response(encode(added(hours)), media_type=JSON)


async def whoami(request: Request) -> Response:
    """The request's key: its id, role and name."""
    who = identity(request)
    names = await deps(request).credentials.names([who.key_id])
    answer = Principal(key_id=who.key_id, role=who.role, name=names.get(who.key_id, ""))
    return Response(encode(answer), media_type=JSON)

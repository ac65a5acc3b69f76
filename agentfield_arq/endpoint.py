"""The agent's side of the wire contract, as a Starlette app.

`POST /reasoners/{name}` and `POST /skills/{name}` take the input object as their body. A
reasoner asked with `X-Execution-ID` (the control plane always sends it) answers 202 and reports
later; otherwise, and for skills, the answer is the result itself. Input that does not fit the
signature is refused before anything runs: 422 naming the field (400 when it is not JSON), 413
past the agent's `max_input_bytes`, which is read no further.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentfield_arq.context import ExecutionContext, entered
from agentfield_arq.errors import PayloadTooLarge
from agentfield_arq.limits import read_body
from agentfield_arq.models import TargetKind
from agentfield_arq.reporter import settle
from agentfield_arq.signature import InvalidInput, Target

if TYPE_CHECKING:
    from agentfield_arq.agent import Agent

JSON = "application/json"
Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type=JSON)


async def invoke(target: Target, agent: Agent, request: Request) -> Response:
    """Run one reasoner or skill for one request, inline or (reasoners) in the background."""
    try:
        kwargs = target.bind(await read_body(request, agent.max_input_bytes))
    except PayloadTooLarge as exc:
        return _json({"error": exc.message, "code": exc.code}, 413)
    except InvalidInput as exc:
        body = {"error": exc.message, "code": "invalid_input"}
        if exc.field:
            body["field"] = exc.field
        return _json(body, exc.status)
    context = ExecutionContext.from_headers(request.headers)
    if target.kind is TargetKind.REASONER and context.execution_id:
        agent.reporter.start(context, target, kwargs)
        return _json({"status": "processing", "execution_id": context.execution_id}, 202)
    with entered(context):
        outcome = await settle(target, kwargs)
    if outcome.result is not None:
        return Response(bytes(outcome.result), media_type=JSON)
    return _json({"error": outcome.error, "code": f"{target.kind}_failed"}, 500)


def create_app(agent: Agent, lifespan: Lifespan) -> Starlette:
    """The agent's HTTP app; targets declared after this call are still served by name."""
    started = time.monotonic()

    def by_name(kind: TargetKind) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            name = request.path_params["name"]
            target = agent.targets.get(name)
            if target is None or target.kind is not kind:
                message = f"node '{agent.node_id}' has no {kind} '{name[:100]}'"
                return _json({"error": message, "code": "target_not_found"}, 404)
            return await invoke(target, agent, request)

        return endpoint

    def at_path(target: Target) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await invoke(target, agent, request)

        return endpoint

    async def health(request: Request) -> Response:
        return _json({"status": "healthy", "node_id": agent.node_id, "version": agent.version})

    async def status(request: Request) -> Response:
        return _json(
            {
                "status": "stopping" if agent.stopping else "running",
                "node_id": agent.node_id,
                "version": agent.version,
                "uptime_seconds": int(time.monotonic() - started),
                "in_flight": agent.reporter.in_flight,
            }
        )

    async def info(request: Request) -> Response:
        return _json(agent.registration())

    routes = [
        Route("/reasoners/{name}", by_name(TargetKind.REASONER), methods=["POST"]),
        Route("/skills/{name}", by_name(TargetKind.SKILL), methods=["POST"]),
        *(Route(t.path, at_path(t), methods=["POST"]) for t in agent.targets.values() if t.path),
        Route("/health", health),
        Route("/status", status),
        Route("/info", info),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def advertised_url(callback_url: str | None, host: str, port: int) -> str:
    """The URL to register: the callback URL, given the real port when it names none (as
    AgentField does), else the bound address, loopback standing in for a wildcard bind."""
    if callback_url:
        parts = urlsplit(callback_url)
        if parts.port is None:
            return f"{parts.scheme}://{parts.hostname}:{port}{parts.path}".rstrip("/")
        return callback_url.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

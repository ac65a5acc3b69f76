"""The agent's side of the wire contract, as a Starlette app.

`POST /reasoners/{name}` and `POST /skills/{name}` take the input object as their body. A
reasoner asked with `X-Execution-ID` (the control plane always sends it) answers 202 and reports
later; otherwise, and for skills, the answer is the result itself. Input that does not fit the
signature is refused before anything runs: 422 naming the field (400 when it is not JSON), 413
past the agent's `max_input_bytes`, which is read no further.

`POST /_internal/executions/{execution_id}/cancel` is the control plane's cancel, served as
AgentField's SDK serves it: the task running that execution is cancelled, and the answer is
200 `{"cancelled": true, "execution_id"}`, or `{"cancelled": false, "execution_id", "reason":
"execution_not_active"}` when nothing of that id runs here. An inline invocation so cancelled
answers 499 `{"status": "cancelled", "execution_id", "reason": "cancelled_by_control_plane"}`.

`POST /webhooks/approval` takes the control plane's decision on an approval a reasoner waits for
(`app.pause`).
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

from agentfield_arq.kernel.body import read_body
from agentfield_arq.kernel.errors import (
    ApiError,
    InvalidInput,
    InvalidRequest,
    PayloadTooLarge,
    TargetFailed,
    TargetNotFound,
    http_status,
)
from agentfield_arq.kernel.models import DecisionNotice
from agentfield_arq.kernel.status import TargetKind
from agentfield_arq.sdk.context import ExecutionContext
from agentfield_arq.sdk.parameters import Target
from agentfield_arq.sdk.pause import APPROVAL_PATH

if TYPE_CHECKING:
    from agentfield_arq.sdk.agent import Agent

JSON = "application/json"
CANCEL_PATH = "/_internal/executions/{execution_id}/cancel"
# A decision notice is small: ids, the decision, a person's feedback and response.
NOTICE_MAX_BYTES = 262_144
Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type=JSON)


def _error(exc: ApiError) -> Response:
    """The control plane's error shape and status for `exc`, so that agents answer alike."""
    body: dict[str, Any] = {"error": exc.message, "code": exc.code}
    if isinstance(exc, InvalidInput) and exc.field:
        body["field"] = exc.field
    return _json(body, http_status(exc))


async def invoke(target: Target, agent: Agent, request: Request) -> Response:
    """Run one reasoner or skill for one request, inline or (reasoners) in the background."""
    try:
        kwargs = target.bind(await read_body(request, agent.max_input_bytes))
    except (PayloadTooLarge, InvalidInput) as exc:
        return _error(exc)
    context = ExecutionContext.from_headers(request.headers)
    if target.kind is TargetKind.REASONER and context.execution_id:
        agent.reporter.start(context, target, kwargs)
        return _json({"status": "processing", "execution_id": context.execution_id}, 202)
    outcome = await agent.reporter.inline(context, target, kwargs)
    if outcome.cancelled:
        body = {"status": "cancelled", "reason": "cancelled_by_control_plane"}
        return _json({**body, "execution_id": context.execution_id}, 499)
    if outcome.result is not None:
        return Response(bytes(outcome.result), media_type=JSON)
    return _error(TargetFailed.of(target.kind, outcome.error or "no error message"))


def create_app(agent: Agent, lifespan: Lifespan) -> Starlette:
    """The agent's HTTP app; targets declared after this call are still served by name."""
    started = time.monotonic()

    def by_name(kind: TargetKind) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            name = request.path_params["name"]
            target = agent.targets.get(name)
            if target is None or target.kind is not kind:
                return _error(
                    TargetNotFound(f"node '{agent.node_id}' has no {kind} '{name[:100]}'")
                )
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

    async def cancel(request: Request) -> Response:
        execution_id = request.path_params["execution_id"]
        answer: dict[str, Any] = {"cancelled": agent.reporter.cancel(execution_id)}
        answer["execution_id"] = execution_id
        if not answer["cancelled"]:
            answer["reason"] = "execution_not_active"
        return _json(answer)

    async def approval(request: Request) -> Response:
        try:
            body = await read_body(request, NOTICE_MAX_BYTES)
            notice = msgspec.json.decode(body, type=DecisionNotice)
        except PayloadTooLarge as exc:
            return _error(exc)
        except msgspec.MsgspecError as exc:
            return _error(InvalidRequest(f"invalid approval notice: {exc}"))
        return _json({"status": "received", "resolved": agent.pauses.resolve(notice)})

    routes = [
        Route("/reasoners/{name}", by_name(TargetKind.REASONER), methods=["POST"]),
        Route(APPROVAL_PATH, approval, methods=["POST"]),
        Route("/skills/{name}", by_name(TargetKind.SKILL), methods=["POST"]),
        *(Route(t.path, at_path(t), methods=["POST"]) for t in agent.targets.values() if t.path),
        Route("/health", health),
        Route("/status", status),
        Route("/info", info),
        Route(CANCEL_PATH, cancel, methods=["POST"]),
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

"""The route table and the OpenAPI document, both built from one list of operations.

Operations on the same path become one Starlette route that dispatches on the method, so that
a 405 names every method the path serves. Each operation lists the error classes its endpoint
can raise; the document turns them into statuses through `http_status`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from agentfield_arq.api import openapi
from agentfield_arq.api.access import Access, authenticate
from agentfield_arq.api.openapi import Operation
from agentfield_arq.api.operations import approvals, executions, memory, nodes, system

# Not in the OpenAPI document, which has no words for it; docs/contract.md describes it.
SOCKETS = memory.SOCKETS


async def document(request: Request) -> Response:
    """Serve the OpenAPI document of OPERATIONS."""
    return Response(_document(), media_type="application/json")


@functools.cache
def _document() -> bytes:
    return msgspec.json.encode(openapi.build(OPERATIONS))


OPERATIONS: list[Operation] = [
    *executions.OPERATIONS,
    *nodes.OPERATIONS,
    *memory.OPERATIONS,
    *approvals.OPERATIONS,
    *system.OPERATIONS,
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


class Express:
    """The `express` operations, served ahead of Starlette's router (by `api/edge.py`).

    Starlette's router tries each route's pattern in turn, and each route wraps its endpoint
    in three more layers (the method dispatch, the request/response adapter and its exception
    handling): ~10% of an enqueue's CPU (bench/). An express operation's path is a fixed
    prefix and one last parameter, so that finding it is one dict lookup; its errors are
    answered by the app's handlers (`HANDLERS`), as they would be behind the router.
    """

    def __init__(
        self,
        operations: Iterable[Operation],
        handlers: Mapping[type[Exception], Callable[[Request, Exception], Awaitable[Response]]],
    ) -> None:
        self.handlers = handlers
        self.by_prefix: dict[tuple[str, str], tuple[str, openapi.Endpoint]] = {}
        for op in operations:
            if op.express:
                prefix, _, last = op.path.partition("{")
                name = last.removesuffix("}")
                if not prefix.endswith("/") or not name.isidentifier():
                    raise ValueError(f"{op.path}: an express path ends in one parameter")
                self.by_prefix[(op.method, prefix)] = (name, guarded(op))

    def match(self, scope: Scope) -> tuple[openapi.Endpoint, dict[str, str]] | None:
        """The endpoint and path parameters of an express request, else None (the router's)."""
        path: str = scope["path"]
        cut = path.rfind("/") + 1
        found = self.by_prefix.get((scope["method"], path[:cut]))
        if found is None or cut == len(path) or scope.get("root_path"):
            return None
        return found[1], {found[0]: path[cut:]}

    async def serve(
        self,
        endpoint: openapi.Endpoint,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Answer with `endpoint`, or with the handler of what it raised (anything else
        propagates, to `api/edge.py`'s last-resort answer)."""
        scope["path_params"] = params
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = next(
                (self.handlers[k] for k in type(exc).__mro__ if k in self.handlers), None
            )
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def guarded(op: Operation) -> openapi.Endpoint:
    """The operation's endpoint behind its access check (the identity found goes on the
    request's scope, where `access.identity` reads it)."""
    if op.access is Access.PUBLIC:
        return op.endpoint

    async def endpoint(request: Request) -> Response:
        request.scope["auth"] = await authenticate(request, op.access)
        return await op.endpoint(request)

    return endpoint

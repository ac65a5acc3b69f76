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


def guarded(op: Operation) -> openapi.Endpoint:
    """The operation's endpoint behind its access check (the identity found goes on the
    request's scope, where `access.identity` reads it)."""
    if op.access is Access.PUBLIC:
        return op.endpoint

    async def endpoint(request: Request) -> Response:
        request.scope["auth"] = await authenticate(request, op.access)
        return await op.endpoint(request)

    return endpoint

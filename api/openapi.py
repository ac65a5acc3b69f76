"""The OpenAPI 3.1 document, generated from the operations that build the route table
(`routes.py`) and from the msgspec Structs that decode the bodies and encode the answers.

Error statuses come from the error classes each operation lists, through `http_status`: the
document cannot name a status the error tree would not answer with.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api.access import ERRORS, Access
from agentfield_arq.kernel.discovery import CompactDiscovery, Discovery
from agentfield_arq.kernel.errors import (
    INTERNAL_STATUS,
    ApiError,
    HeadersTooLarge,
    HostNotAllowed,
    UnsupportedMediaType,
    http_status,
)
from agentfield_arq.kernel.models import ErrorBody, WebhookSpec
from agentfield_arq.kernel.targets import NAME, NODE_ID

Endpoint = Callable[[Request], Awaitable[Response]]


class EventStream:
    """The shape of an answer that is a `text/event-stream` (Server-Sent Events)."""


REF = "#/components/schemas/{name}"
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an agentfield-arq API key"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
INTERNAL_ERROR = "`internal_error`: unexpected; the API's log holds the traceback."
# Documented although ExecuteRequest decodes `webhook` loosely (an invalid one must not reject
# the execution): this is the shape a caller should send.
EXTRA_SCHEMAS: tuple[type, ...] = (WebhookSpec, Discovery, CompactDiscovery)
# The path parameters, as strict as the code that reads them (an unknown id is a 404).
PATH_SCHEMAS: Mapping[str, Mapping[str, str]] = {
    "target": {"type": "string", "pattern": f"^{NODE_ID}\\.{NAME}$"},
    "node_id": {"type": "string", "pattern": f"^{NODE_ID}$"},
    "execution_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
    # As X-Run-ID accepts it (core/execution.py) and api/listing.py checks it.
    "run_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
}
# What any request can be answered before it reaches its operation (api/edge.py, and the HTTP
# protocol's header limits in api/protocol.py).
EDGE_ERRORS: tuple[type[ApiError], ...] = (UnsupportedMediaType, HostNotAllowed, HeadersTooLarge)


@dataclass(frozen=True, slots=True)
class Query:
    """One query parameter of an operation (or, with `location="header"`, a request header)."""

    name: str
    description: str
    schema: Mapping[str, Any]
    location: str = "query"


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path: the endpoint that serves it and all the document says of it.

    `answers` maps each success status to its description and shape (a Struct, or a type such
    as `dict[str, Execution]`; None for no body); `errors` lists the error classes the
    endpoint can raise, each answered with its `http_status` and an `ErrorBody`. Every
    operation can also answer 500 and the EDGE_ERRORS.
    """

    method: str
    path: str
    endpoint: Endpoint
    summary: str
    answers: Mapping[int, tuple[str, object]]
    errors: tuple[type[ApiError], ...] = ()
    body: type | None = None
    body_required: bool = True
    query: tuple[Query, ...] = ()
    access: Access = field(kw_only=True)
    # Served ahead of Starlette's router (routes.Express): for the hottest operations, whose
    # path ends in its one parameter.
    express: bool = field(default=False, kw_only=True)

    @property
    def answered_errors(self) -> tuple[type[ApiError], ...]:
        """Every error class the operation can answer: its access check's, then its own."""
        return tuple(dict.fromkeys((*ERRORS[self.access], *self.errors)))


def build(operations: Iterable[Operation]) -> dict[str, Any]:
    """The whole OpenAPI document of `operations`."""
    ops = list(operations)
    shapes = list(
        dict.fromkeys(
            [
                *(op.body for op in ops if op.body is not None),
                *(
                    shape
                    for op in ops
                    for _, shape in op.answers.values()
                    if shape is not None and shape is not EventStream
                ),
                ErrorBody,
                *EXTRA_SCHEMAS,
            ]
        )
    )
    schemas, components = msgspec.json.schema_components(shapes, ref_template=REF)
    schema_of = dict(zip(shapes, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {"title": "agentfield-arq", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation(op: Operation, schema_of: Mapping[object, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary}
    doc["security"] = [] if op.access is Access.PUBLIC else [{"bearer": []}, {"apiKey": []}]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_SCHEMAS[name]}
        for name in (part.strip("{}") for part in op.path.split("/") if part.startswith("{"))
    ]
    parameters += [
        {"name": q.name, "in": q.location, "description": q.description, "schema": dict(q.schema)}
        for q in op.query
    ]
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": schema_of[op.body]}},
        }
    doc["responses"] = _responses(op, schema_of)
    return doc


def _responses(op: Operation, schema_of: Mapping[object, Any]) -> dict[str, Any]:
    responses: dict[int, dict[str, Any]] = {}
    for status, (description, shape) in op.answers.items():
        responses[status] = {"description": description}
        if shape is EventStream:
            responses[status]["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
        elif shape is not None:
            responses[status]["content"] = {"application/json": {"schema": schema_of[shape]}}
    by_status: dict[int, list[str]] = {}
    for kind in (*op.answered_errors, *EDGE_ERRORS):
        by_status.setdefault(http_status(kind), []).append(_describe(kind))
    by_status.setdefault(INTERNAL_STATUS, []).append(INTERNAL_ERROR)
    error_body = {"application/json": {"schema": schema_of[ErrorBody]}}
    for status, descriptions in by_status.items():
        if status in responses:
            raise ValueError(f"{op.method} {op.path}: {status} is both a success and an error")
        responses[status] = {"description": " ".join(descriptions), "content": error_body}
    return {str(status): responses[status] for status in sorted(responses)}


def _describe(kind: type[ApiError]) -> str:
    """`code`: the class's docstring on one line."""
    return f"`{kind.code}`: {' '.join((inspect.getdoc(kind) or '').split())}"

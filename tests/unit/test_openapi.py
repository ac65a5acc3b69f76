"""The OpenAPI document and the route table come from one list: every route served is documented,
with every status it can answer, and the document holds together as OpenAPI 3.1.

The app is driven in this process without its lifespan: neither the document nor a 405 needs
Redis, so no connection is ever opened.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from agentfield_arq.api import routes
from agentfield_arq.api.app import create_app
from agentfield_arq.api.openapi import EDGE_ERRORS
from agentfield_arq.api.routes import OPERATIONS
from agentfield_arq.core.settings import from_env
from agentfield_arq.kernel.errors import http_status
from tests.conftest import TEST_HOST

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
def app() -> Starlette:
    # Never connected to: the lifespan, which would create the clients, is not entered.
    return create_app(from_env({}, redis_url="redis://127.0.0.1:1/0", allowed_hosts=TEST_HOST))


@pytest.fixture
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@pytest.fixture
async def document(api: httpx.AsyncClient) -> dict[str, Any]:
    answer = await api.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    served: dict[str, Any] = answer.json()
    return served


def _served(app: Starlette) -> set[tuple[str, str]]:
    """(method, path) of every HTTP route; HEAD is left out, Starlette answers it for every GET.
    The WebSocket routes, which OpenAPI cannot describe, are the ones routes.SOCKETS lists."""
    pairs = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            assert route in routes.SOCKETS
            continue
        if isinstance(route, Mount):  # the dashboard's and the reference's files, not operations
            assert isinstance(route.app, StaticFiles)
            assert route.path in ("/ui", "/docs")
            continue
        assert isinstance(route, Route)
        pairs |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    return pairs


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item}


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_route_served_is_documented_and_every_documented_one_is_served(
    app: Starlette, document: dict[str, Any]
) -> None:
    assert _served(app) == _documented(document)


def test_the_aliases_and_sdk_routes_once_missing_are_documented(document: dict[str, Any]) -> None:
    documented = _documented(document)
    for pair in [
        ("POST", "/api/v1/nodes"),
        ("POST", "/api/v1/nodes/{node_id}/shutdown"),
        ("PATCH", "/api/v1/nodes/{node_id}/status"),
        ("PUT", "/api/v1/nodes/{node_id}/status"),
        ("GET", "/health"),
        ("GET", "/openapi.json"),
    ]:
        assert pair in documented


def test_every_error_response_is_an_error_body(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == ERROR_BODY, (method, path, status)


def test_every_operation_documents_the_statuses_of_its_error_classes_the_edge_and_500(
    document: dict[str, Any],
) -> None:
    edge = {http_status(kind) for kind in EDGE_ERRORS}
    assert edge == {415, 421, 431}
    for op in OPERATIONS:
        documented = set(document["paths"][op.path][op.method.lower()]["responses"])
        expected = {*op.answers, *(http_status(kind) for kind in op.answered_errors), *edge, 500}
        assert documented == {str(status) for status in expected}, (op.method, op.path)


def test_execute_async_documents_each_status_it_can_answer_with_its_codes(
    document: dict[str, Any],
) -> None:
    execute = document["paths"]["/api/v1/execute/async/{target}"]["post"]["responses"]
    assert {
        "202",
        "400",
        "401",
        "404",
        "408",
        "410",
        "413",
        "415",
        "421",
        "422",
        "429",
        "431",
        "500",
        "503",
    } == set(execute)
    assert "`unauthorized`" in execute["401"]["description"]
    assert "`rate_limited`" in execute["429"]["description"]
    assert "`payload_too_large`" in execute["413"]["description"]
    assert "`json_too_deep`" in execute["400"]["description"]
    assert "`idempotency_key_reused`" in execute["422"]["description"]
    assert "`queue_full`" in execute["503"]["description"]
    assert "`unavailable`" in execute["503"]["description"]


def test_only_health_readiness_and_the_document_are_served_without_a_key(
    document: dict[str, Any],
) -> None:
    public = {
        (method, path)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if op["security"] == []
    }
    assert public == {
        ("get", "/health"),
        ("get", "/api/v1/health"),
        ("get", "/ready"),
        ("get", "/openapi.json"),
    }
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def test_the_document_names_its_components_without_generic_arguments(
    document: dict[str, Any],
) -> None:
    names = set(document["components"]["schemas"])
    assert {"Execution", "SyncResult", "ErrorBody", "Node", "NodeList", "Health"} <= names
    assert not [name for name in names if not re.fullmatch(r"[A-Za-z]+", name)]


def test_every_ref_resolves_to_a_component(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        prefix, _, name = ref.rpartition("/")
        assert prefix == "#/components/schemas", ref
        assert name in components, ref


def test_the_idempotency_key_header_of_both_execute_routes_is_documented_with_its_form(
    document: dict[str, Any],
) -> None:
    def headers(path: str, method: str) -> dict[str, str]:
        operation = document["paths"][path][method]
        return {
            p["name"]: p["schema"]["pattern"]
            for p in operation.get("parameters", ())
            if p["in"] == "header"
        }

    for path in ("/api/v1/execute/async/{target}", "/api/v1/execute/{target}"):
        pattern = headers(path, "post")["Idempotency-Key"]
        assert re.fullmatch(pattern, "order-4411")
        assert not re.fullmatch(pattern, "x" * 257)


def test_the_document_has_the_structure_openapi_3_1_requires(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    for method, path, operation in _operations(document):
        assert method in METHODS
        assert path.startswith("/")
        assert operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            assert re.fullmatch(r"[1-5][0-9][0-9]", status)
            assert response["description"], (method, path, status)
        declared = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
        for parameter in operation.get("parameters", ()):
            assert parameter["in"] in {"path", "query", "header", "cookie"}
            assert parameter["in"] != "path" or parameter["required"] is True
        if "requestBody" in operation:
            assert operation["requestBody"]["content"]["application/json"]["schema"]


async def test_a_405_names_every_method_its_path_serves(api: httpx.AsyncClient) -> None:
    answer = await api.delete("/api/v1/nodes")
    assert answer.status_code == 405
    assert answer.json()["code"] == "method_not_allowed"
    assert answer.headers["allow"] == "GET, HEAD, POST"


async def test_a_405_on_the_lifecycle_path_names_patch_and_put(api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/v1/nodes/n1/status")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "PATCH, PUT"


async def test_every_405_allows_exactly_the_documented_methods_and_head_with_get(
    api: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    for path, item in document["paths"].items():
        documented = {method.upper() for method in item}
        url = re.sub(r"{\w+}", "x", path)
        answer = await api.delete(url)
        assert answer.status_code == 405, path
        allowed = set(answer.headers["allow"].split(", "))
        assert allowed == documented | ({"HEAD"} if "GET" in documented else set()), path


async def test_head_is_served_where_get_is(api: httpx.AsyncClient) -> None:
    answer = await api.head("/openapi.json")
    assert answer.status_code == 200
    assert answer.content == b""

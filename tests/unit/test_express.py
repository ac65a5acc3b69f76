"""The express operations (api/routes.py `Express`): found by one lookup ahead of the router,
only where the router would have chosen the same route."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from agentfield_arq.api import routes
from agentfield_arq.api.access import Access
from agentfield_arq.api.errors import HANDLERS
from agentfield_arq.api.openapi import Operation

EXPRESS = routes.Express(routes.OPERATIONS, HANDLERS)


def _scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": root_path}


async def _endpoint(request: Request) -> Response:
    return Response()


def test_an_async_execute_is_served_express_with_its_target_as_path_parameter() -> None:
    found = EXPRESS.match(_scope("POST", "/api/v1/execute/async/node.name"))
    assert found is not None
    assert found[1] == {"target": "node.name"}


@pytest.mark.parametrize(
    ("method", "path", "root_path"),
    [
        ("GET", "/api/v1/execute/async/node.name", ""),  # the router's 405
        ("POST", "/api/v1/execute/async/", ""),  # no target: the router's 404
        ("POST", "/api/v1/execute/async/node.name/more", ""),
        ("POST", "/api/v1/execute/node.name", ""),  # sync: not express
        ("POST", "/prefix/api/v1/execute/async/node.name", "/prefix"),
    ],
)
def test_what_the_router_would_answer_otherwise_is_left_to_it(
    method: str, path: str, root_path: str
) -> None:
    assert EXPRESS.match(_scope(method, path, root_path)) is None


def test_an_express_path_must_end_in_its_one_parameter() -> None:
    op = Operation(
        "GET", "/a/{x}/b", _endpoint, "s", {200: ("ok", None)}, access=Access.PUBLIC, express=True
    )
    with pytest.raises(ValueError, match="ends in one parameter"):
        routes.Express([op], HANDLERS)

"""The dashboard's and the API reference's files: served without a key, from the package, with
nothing fetched from elsewhere (tests/e2e/test_ui.py drives them in a browser)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from agentfield_arq.api.app import create_app
from agentfield_arq.core.settings import from_env
from tests.conftest import TEST_HOST

PAGES = ["/ui/", "/ui/app.js", "/ui/style.css", "/docs/", "/docs/docs.js",
         "/docs/swagger/swagger-ui-bundle.js", "/docs/swagger/swagger-ui.css"]  # fmt: skip


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    # Never connected to: the lifespan, which would create the clients, is not entered.
    app = create_app(from_env({}, redis_url="redis://127.0.0.1:1/0", allowed_hosts=TEST_HOST))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{TEST_HOST}") as client:
        yield client


@pytest.mark.parametrize("path", PAGES)
async def test_each_file_is_served_without_a_key(api: httpx.AsyncClient, path: str) -> None:
    answer = await api.get(path, headers={"Authorization": ""})
    assert answer.status_code == 200, path
    assert answer.content


@pytest.mark.parametrize("path", ["/ui/", "/docs/"])
async def test_the_pages_load_only_files_of_this_server(api: httpx.AsyncClient, path: str) -> None:
    page = (await api.get(path)).text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources
    assert all(s.startswith(("/", "#")) for s in sources), sources


async def test_swagger_ui_ships_with_its_licence(api: httpx.AsyncClient) -> None:
    answer = await api.get("/docs/swagger/LICENSE")
    assert "Apache License" in answer.text

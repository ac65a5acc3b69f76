"""The integration tier's shared API client (`served`, with the admin key), with node `e2e`
registered through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from agentfield_arq.core.settings import Settings
from agentfield_arq.ops.embedded import EmbeddedRedis
from tests.e2e.agent_app import registration
from tests.integration.served import served


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app (with the admin key), with node `e2e` registered through the API."""
    async with served(settings) as client:
        answer = await client.post(
            "/api/v1/nodes/register", json=registration("e2e", "http://127.0.0.1:9")
        )
        assert answer.status_code == 201, answer.text
        yield client


@pytest.fixture(scope="module")
def shard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A second embedded valkey (shard 1) for the tests of a module that routes nodes to it."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("shard-1")), appendonly=False)
    server.start()
    yield server
    server.stop()

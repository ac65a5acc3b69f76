"""The integration tier's shared API client (`served`, with the admin key), with node `e2e`
registered through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agentfield_arq.core.settings import Settings
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

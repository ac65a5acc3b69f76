"""A worker's agent client, as its start-up builds it (`agent_client`, which the worker's
on_startup calls), applies the connect policy of its settings: refused addresses are refused
before any socket is opened."""

from __future__ import annotations

from typing import Any

import pytest

from agentfield_arq.core.guard import agent_client
from agentfield_arq.core.settings import from_env
from agentfield_arq.kernel.errors import DestinationRefused


@pytest.mark.parametrize(
    ("allow", "url", "refusal"),
    [
        ({}, "http://127.0.0.1:9", "127.0.0.1 is a loopback address"),
        ({"agent_allowed_networks": "10.1.0.0/16"}, "http://10.2.0.1:9", "10.2.0.1 is a private"),
        ({"agent_allow_loopback": True}, "http://169.254.169.254", "never allowed"),
    ],
)
async def test_the_workers_agent_client_refuses_what_its_settings_do_not_allow(
    allow: dict[str, Any], url: str, refusal: str
) -> None:
    async with agent_client(from_env({}, **allow)) as http:
        with pytest.raises(DestinationRefused, match=refusal):
            await http.post(f"{url}/reasoners/echo", json={})

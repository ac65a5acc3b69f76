"""A worker's agent client, as its start-up builds it, applies the connect policy of its
settings: refused addresses are refused before any socket is opened."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from agentfield_arq.core.settings import from_env
from agentfield_arq.kernel.errors import DestinationRefused
from agentfield_arq.workers.settings import worker_settings

REDIS_URL = "redis://127.0.0.1:1/0"  # never connected to


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
    kwargs = worker_settings(from_env({}, redis_url=REDIS_URL, **allow))
    ctx: dict[str, Any] = {"redis": Redis.from_url(REDIS_URL)}
    await kwargs["on_startup"](ctx)
    try:
        with pytest.raises(DestinationRefused, match=refusal):
            await ctx["http"].post(f"{url}/reasoners/echo", json={})
    finally:
        await kwargs["on_shutdown"](ctx)
        await ctx["redis"].aclose()

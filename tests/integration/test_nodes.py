"""Node liveness is a lease: a node whose heartbeats stop is reported inactive."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from agentfield_arq.codec import now_ms
from agentfield_arq.models import NodeRegistration, TargetSpec
from agentfield_arq.nodes import NodeRegistry
from agentfield_arq.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_node_is_inactive_once_its_lease_lapses_and_active_after_a_heartbeat(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    node = NodeRegistration(id="n1", base_url="http://127.0.0.1:9", reasoners=[TargetSpec(id="r")])
    await registry.register(b'{"id": "n1"}', node)
    assert (await registry.get("n1"))["status"] == "active"
    lapsed = now_ms() - int(settings.node_lease_s * 1000) - 1000
    await redis_client.hset(registry.keys.node("n1"), "last_heartbeat_ms", lapsed)
    assert (await registry.get("n1"))["status"] == "inactive"
    await registry.heartbeat("n1", None)
    assert (await registry.get("n1"))["status"] == "active"


async def test_re_registering_replaces_the_node_s_targets(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    first = NodeRegistration(id="n1", base_url="http://a:1", reasoners=[TargetSpec(id="old")])
    second = NodeRegistration(id="n1", base_url="http://b:2", skills=[TargetSpec(id="new")])
    await registry.register(b'{"id": "n1"}', first)
    await registry.register(b'{"id": "n1"}', second)
    targets = await redis_client.hgetall(registry.keys.node_targets("n1"))
    assert targets == {b"new": b"skill"}
    assert await registry.base_url("n1") == "http://b:2"


async def test_the_list_forgets_nodes_whose_records_expired(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    await registry.register(b'{"id": "n1"}', NodeRegistration(id="n1", base_url="http://a:1"))
    await redis_client.delete(registry.keys.node("n1"))
    assert await registry.list() == []
    assert await redis_client.smembers(registry.keys.nodes) == set()


async def test_a_node_that_reports_itself_offline_is_inactive_despite_heartbeats(
    redis_client: Redis, settings: Settings
) -> None:
    registry = NodeRegistry(redis_client, settings)
    await registry.register(b'{"id": "n1"}', NodeRegistration(id="n1", base_url="http://a:1"))
    await registry.heartbeat("n1", "offline")
    assert (await registry.get("n1"))["status"] == "inactive"
